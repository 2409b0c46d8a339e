"""Settings: one dynaconf object with environments, validators, and the legacy INI reader.

Only the composition root (pipeline.cli.main / pipeline.app.uploader) reads settings; it passes plain
values to everything else.
"""

from settings import dynaconf_plain  # noqa: F401  (first: dynaconf without jinja2)
from settings.describe import describe_settings
from settings.legacy_ini import LegacyIniError, read_legacy_ini
from settings.loader import ENVIRONMENTS, SettingsError, build_settings, validate_settings
from settings.validators import RULES, envvar

__all__ = [
    "ENVIRONMENTS",
    "RULES",
    "LegacyIniError",
    "SettingsError",
    "build_settings",
    "describe_settings",
    "envvar",
    "read_legacy_ini",
    "validate_settings",
]
