"""Read the original uploader's `beemon-config.ini` and map it onto this project's keys."""

from __future__ import annotations

import configparser
import os
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


class LegacyIniError(ValueError):
    """The INI file is missing, unreadable, or holds a value of the wrong type."""


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
    values: dict[str, Any] = {}
    for (section, option), (key, convert) in LEGACY_KEYS.items():
        if not parser.has_option(section, option):
            continue
        raw = parser.get(section, option).strip()
        try:
            values[key] = convert(raw)
        except ValueError:
            shown = "***" if option == "password" else repr(raw)
            raise LegacyIniError(
                f"legacy INI {path}: [{section}] {option} = {shown} is not a {convert.__name__}; fix it in the INI file"
            ) from None
    return values
