"""dynaconf is loaded without jinja2 (issue 17's start-up and memory), and jinja2 stays importable."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("jinja2", reason="jinja2 is not installed here: nothing for dynaconf to import")

PROBE = """
import sys
import settings
settings.build_settings("development")
print("jinja2 loaded by the settings:", "jinja2" in sys.modules)
from dynaconf.utils import parse_conf
print("dynaconf's jinja environment:", parse_conf.jinja_env)
import jinja2
print("jinja2 importable afterwards:", bool(jinja2.__version__))
"""


def test_settings_load_no_jinja2_and_leave_it_importable_for_the_rest_of_the_process():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.splitlines() == [
        "jinja2 loaded by the settings: False",
        "dynaconf's jinja environment: None",
        "jinja2 importable afterwards: True",
    ], done.stderr
