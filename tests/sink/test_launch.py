"""The sink's launcher copies CPython's spawn launcher minus the resource tracker: pinned to its source.

On a CPython whose launcher differs, this fails (compare `pipeline/sink/launch.py` with the new
`multiprocessing.popen_spawn_posix.Popen._launch`, then add its fingerprint and its version to
`CHECKED_VERSIONS`); at run time such a version gets spawn's own launcher.
"""

from __future__ import annotations

import hashlib
import inspect
import re
import sys
from multiprocessing import popen_spawn_posix

from pipeline.sink import launch

#: sha256 (first 16 hex digits) of `Popen._launch`'s source with runs of white space made one space:
#: CPython 3.10.13, 3.11.7, 3.12.1 and 3.13.0 have the same.
KNOWN_LAUNCHERS = {"aaaf9b5d07ed3d30"}


def test_cpythons_spawn_launcher_is_the_one_the_trackerless_copy_was_made_from():
    source = re.sub(r"\s+", " ", inspect.getsource(popen_spawn_posix.Popen._launch)).strip()
    fingerprint = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert fingerprint in KNOWN_LAUNCHERS, f"CPython {sys.version.split()[0]}'s spawn launcher changed ({fingerprint})"


def test_a_checked_cpython_gets_the_trackerless_launcher_any_other_spawns_own():
    expected = launch.TrackerlessPopen if sys.version_info[:2] in launch.CHECKED_VERSIONS else popen_spawn_posix.Popen
    assert launch.launcher() is expected
    assert sys.version_info[:2] in launch.CHECKED_VERSIONS  # the versions pyproject supports are all checked
