"""The docs name every setting with its variable, and the README gives exactly its two commands."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from settings.validators import RULES, envvar

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", sorted(RULES))
def test_settings_page_lists_every_key_with_its_variable(key: str) -> None:
    page = (ROOT / "docs" / "settings.rst").read_text(encoding="utf-8")
    assert f"``{key}``" in page
    assert envvar(key) in page


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^    (\S.*)$", readme, flags=re.MULTILINE)
    assert commands == ["make run", "make test"]


def test_ci_runs_the_readme_test_command() -> None:
    """The README's command first; then only the install matrix (lowest versions, other Pythons)."""
    script = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    steps = [line for line in script.splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert steps == ["make test", "make test-installs"]
