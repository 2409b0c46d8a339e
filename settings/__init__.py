"""Settings: one dynaconf object with environments, validators, and the legacy INI reader.

Only the composition root (pipeline.cli.main / pipeline.app.uploader) reads settings; it passes plain
values to everything else.

Importing the package imports no dynaconf: `SettingsError`, `envvar` and `ca_file_problem` need
none, and the rest is imported on first use. `run`'s parent reads its settings in a short-lived
child (`pipeline.app.settings_apart`) and so never holds dynaconf's modules (issue 17).
"""

from __future__ import annotations

import importlib
from typing import Any

from settings.problems import SettingsError, ca_file_problem, envvar

#: The names that need dynaconf (or the INI reader), and the module each lives in.
_ON_FIRST_USE = {
    "ENVIRONMENTS": "settings.loader",
    "build_settings": "settings.loader",
    "validate_settings": "settings.loader",
    "describe_settings": "settings.describe",
    "LegacyIniError": "settings.legacy_ini",
    "read_legacy_ini": "settings.legacy_ini",
    "RULES": "settings.validators",
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module 'settings' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ENVIRONMENTS",
    "RULES",
    "LegacyIniError",
    "SettingsError",
    "build_settings",
    "ca_file_problem",
    "describe_settings",
    "envvar",
    "read_legacy_ini",
    "validate_settings",
]
