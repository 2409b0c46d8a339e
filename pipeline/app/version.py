"""The version, one place: `--version`, the status file, the `build_info` metric, and the package's metadata.

pyproject.toml takes the package's version from here (`[tool.setuptools.dynamic]`), so the running
code needs no `importlib.metadata` to learn it: that module, with the email parser and zipfile it
imports, was about 1 MB of an idle `run`'s parent (issue 17).
"""

from __future__ import annotations

VERSION = "0.1.0"
