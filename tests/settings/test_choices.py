"""Each enumeration has one home (`operators.choices`): the validators, the shipped settings.toml,
the options' defaults and the docs' settings table all agree with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from operators.choices import BACKFILL_ORDERS, DEFAULT_IGNORE_PATTERNS, OBSERVER_KINDS, TLS_MODES
from pipeline.app.options import UploaderOptions
from settings.validators import RULES

REPO = Path(__file__).resolve().parents[2]
CHOICES = {"ftp.tls": TLS_MODES, "watch.observer": OBSERVER_KINDS, "upload.backfill_order": BACKFILL_ORDERS}


def shipped_default(key: str):
    table = tomllib.loads((REPO / "settings" / "settings.toml").read_text(encoding="utf-8"))["default"]
    for part in key.split("."):
        table = table[part]
    return table


def settings_row(key: str) -> str:
    """The docs' settings-table row of `key`: from its ``key`` line to the next row."""
    text = (REPO / "docs" / "settings.rst").read_text(encoding="utf-8")
    match = re.search(rf"^   \* - ``{re.escape(key)}``\n(.*?)(?=^   \* - |\Z)", text, re.S | re.M)
    assert match, f"docs/settings.rst has no row for {key}"
    return match.group(1)


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_the_validator_takes_exactly_the_choices_and_names_them_all(key: str) -> None:
    predicate, allowed = RULES[key]
    assert all(predicate(choice) for choice in CHOICES[key])
    assert not predicate("other") and not predicate(CHOICES[key][0].upper())
    assert allowed == "one of " + ", ".join(CHOICES[key])


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_the_docs_table_names_every_choice_and_the_shipped_default(key: str) -> None:
    row = settings_row(key)
    assert [choice for choice in CHOICES[key] if f"``{choice}``" not in row] == []
    assert shipped_default(key) in CHOICES[key]
    assert f"``{shipped_default(key)}``" in row.split("\n")[1]  # the default column


def test_the_default_ignore_patterns_are_the_shipped_ones_and_the_options_ones() -> None:
    assert tuple(shipped_default("upload.ignore_patterns")) == DEFAULT_IGNORE_PATTERNS
    defaults = {f.name: f.default for f in UploaderOptions.__dataclass_fields__.values()}
    assert defaults["ignore_patterns"] == DEFAULT_IGNORE_PATTERNS
    assert defaults["observer"] == shipped_default("watch.observer")
    assert defaults["backfill_order"] == shipped_default("upload.backfill_order")
