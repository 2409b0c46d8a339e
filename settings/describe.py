"""The effective settings, each with the layer that set it, and secrets masked (`config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from settings.dynaconf_plain import Dynaconf, get_history
from settings.problems import envvar
from settings.validators import RULES

SECRET_WORDS = ("password", "secret", "token")
MASK = "********"


def is_secret(key: str) -> bool:
    return any(word in key.lower() for word in SECRET_WORDS)


def _layer_name(entry: dict[str, Any], key: str) -> str:
    loader = entry.get("loader")
    identifier = str(entry.get("identifier", ""))
    if loader == "toml":
        return f"{Path(identifier).name} [{str(entry.get('env', '')).lower()}] ({identifier})"
    if loader == "env_global":
        return f"environment {envvar(key)}"
    return identifier or str(loader)


def _leaf(value: Any, parts: list[str]) -> Any:
    for part in parts:
        if not isinstance(value, dict):
            return _MISSING
        lowered = {str(k).lower(): v for k, v in value.items()}
        if part.lower() not in lowered:
            return _MISSING
        value = lowered[part.lower()]
    return value


_MISSING = object()


def layer_of(settings: Dynaconf, key: str) -> str:
    """Which layer gave `key` its current value.

    dynaconf's history holds whole merged tables, so the layer is the first entry of the last run
    of entries holding the current value: a layer that repeats an inherited value did not set it.
    """
    parts = key.split(".")
    top = parts[0]
    current = settings.get(key)
    history = get_history(settings)
    owner: dict[str, Any] | None = None
    for entry in history:
        value = entry.get("value")
        if not isinstance(value, dict):
            continue
        upper = {str(k).upper(): v for k, v in value.items()}
        if top.upper() not in upper:
            continue
        found = _leaf(upper[top.upper()], parts[1:]) if len(parts) > 1 else upper[top.upper()]
        if found is _MISSING:
            continue
        if found == current:
            owner = owner or entry
        else:
            owner = None
    return _layer_name(owner, key) if owner else "default"


def describe_settings(settings: Dynaconf) -> list[tuple[str, str, str]]:
    """(key, shown value, layer) for every documented key; secrets are masked, empty or not."""
    rows = []
    for key in RULES:
        value = settings.get(key)
        if is_secret(key):
            shown = MASK if value else "(not set)"
        else:
            shown = repr(value)
        rows.append((key, shown, layer_of(settings, key)))
    return rows
