"""Read the original uploader's configuration and map it onto this project's keys.

The orchestrator holds its configuration in several shapes: the path of a `beemon-config.ini`, a
`configparser.ConfigParser`, its own `Config` object (anything with a ConfigParser-like
`get(section, option)`), or a mapping of sections (`{"ftp": {"host": ...}}`). `read_legacy_config`
reads each the same way, through one table (`LEGACY_KEYS`), so `--legacy-ini` and `Uploader(queue,
config)` can never disagree about what a key means.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: (section, option) -> (key, converter). The INI's other options are the orchestrator's, not ours.
LEGACY_KEYS: dict[tuple[str, str], tuple[str, type]] = {
    ("global", "root_upload_directory"): ("ftp.remote_root", str),
    ("global", "local_output_directory"): ("local_output_directory", str),
    ("ftp", "username"): ("ftp.username", str),
    ("ftp", "password"): ("ftp.password", str),
    ("ftp", "host"): ("ftp.host", str),
    ("ftp", "port"): ("ftp.port", int),
    ("ftp", "upload_delay"): ("upload.debounce_seconds", float),
}
#: What a legacy configuration names the FTP server with: the section and option a user must set.
HOST_OPTION = ("ftp", "host")

#: What `get` raises for a missing section or option in the shapes an orchestrator may hold.
_MISSING = (configparser.Error, LookupError)


class LegacyIniError(ValueError):
    """The legacy configuration is missing, unreadable, or holds a value of the wrong type."""


def describe_legacy_source(source: Any) -> str:
    """How error messages name the configuration: its path, or what kind of object it is."""
    if isinstance(source, str | os.PathLike):
        return f"legacy INI {os.fspath(source)}"
    return f"the {type(source).__name__} given as config"


def is_legacy_source(source: Any) -> bool:
    """Whether `source` is one of the shapes `read_legacy_config` reads."""
    return isinstance(source, str | os.PathLike | configparser.RawConfigParser | Mapping) or callable(
        getattr(source, "get", None)
    )


def read_legacy_ini(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapped values present in the INI file at `path`, as `{"ftp.port": 21, ...}`."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with Path(path).open(encoding="utf-8") as handle:
            parser.read_file(handle)
    except OSError as error:
        raise LegacyIniError(
            f"cannot read legacy INI {path}: {error.strerror}; check the path given to --legacy-ini"
        ) from None
    except configparser.Error as error:
        first_line = str(error).splitlines()[0]
        raise LegacyIniError(f"legacy INI {path} is not a valid INI file ({first_line}); fix or remove it") from None
    return _mapped(parser, f"legacy INI {path}", "the INI file")


def read_legacy_config(source: Any) -> dict[str, Any]:
    """The mapped values present in any legacy configuration shape (see the module docstring)."""
    if isinstance(source, str | os.PathLike):
        return read_legacy_ini(source)
    if not is_legacy_source(source):
        raise LegacyIniError(
            f"config of type {type(source).__name__} is not a configuration the uploader reads: give a"
            " ConfigParser, an object with get(section, option), a mapping of sections, an INI path,"
            " a settings object, UploaderOptions or None"
        )
    return _mapped(source, describe_legacy_source(source), "the configuration")


def legacy_value(source: Any, section: str, option: str) -> Any | None:
    """One raw option of a legacy configuration, or None when it is absent (or empty)."""
    if isinstance(source, configparser.RawConfigParser):
        if not source.has_option(section, option):
            return None
        value: Any = source.get(section, option, raw=True)
    elif isinstance(source, Mapping):
        options = source.get(section)
        if not isinstance(options, Mapping) or option not in options:
            return None
        value = options[option]
    else:
        try:
            value = source.get(section, option)
        except _MISSING:
            return None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _mapped(source: Any, where: str, fix_in: str) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for (section, option), (key, convert) in LEGACY_KEYS.items():
        raw = legacy_value(source, section, option)
        if raw is None:
            continue
        try:
            values[key] = convert(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError):
            shown = "***" if option == "password" else repr(raw)
            raise LegacyIniError(
                f"{where}: [{section}] {option} = {shown} is not a {convert.__name__}; fix it in {fix_in}"
            ) from None
    return values
