"""Sphinx configuration: built warning-free (`-W`) by `make test`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

project = "beemon-uploader"
author = "beemon-uploader developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports: list[str] = []
exclude_patterns = ["_build"]
html_theme = "alabaster"
nitpicky = False
