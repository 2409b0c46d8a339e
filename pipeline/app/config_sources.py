"""What the original API's constructors accept as configuration, read into `UploaderOptions`.

`Uploader(queue, config)` and `UploadHelper()` take what an orchestrator holds: `UploaderOptions`, a
settings object (`settings.build_settings`), the path of a `beemon-config.ini`, a
`configparser.ConfigParser`, its own `Config` object (anything with `get(section, option)`), a
mapping of sections, or None. Every legacy shape goes through the one mapping of `--legacy-ini`.

Nothing here falls back to a development default: a configuration that names no FTP server is a
`ValueError` (a `settings.SettingsError`) naming what is missing and where it looked.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.app.options import UploaderOptions, options_from_settings

log = logging.getLogger("beemon.uploader")
LEGACY_INI_NAME = "beemon-config.ini"


def legacy_ini_places() -> list[Path]:
    """Where `config=None` looks for a `beemon-config.ini`, in order.

    The working directory, the folder of the orchestrator's main script (the original read the INI
    from the repository's root, beside it) and the site settings folder.
    """
    from settings.loader import SITE_DIR_DEFAULT

    places = [Path.cwd()]
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        places.append(Path(main_file).resolve().parent)
    places.append(Path(os.environ.get("BEEMON_CONFIG_DIR") or SITE_DIR_DEFAULT))
    unique: list[Path] = []
    for place in places:
        if place not in unique:
            unique.append(place)
    return unique


def find_legacy_ini() -> Path | None:
    for place in legacy_ini_places():
        candidate = place / LEGACY_INI_NAME
        if candidate.is_file():
            return candidate
    return None


def _is_settings_object(config: Any) -> bool:
    """A dynaconf settings object (as `settings.build_settings` returns), told apart from a `get`-able legacy one."""
    if "dynaconf" not in sys.modules:
        return False  # no dynaconf object exists before dynaconf is imported (and importing it here costs)
    from dynaconf import LazySettings
    from dynaconf.base import Settings

    return isinstance(config, LazySettings | Settings)


def options_from_config(config: Any | None, *, caller: str = "Uploader(queue, config)") -> UploaderOptions:
    """Read `config` (see the module docstring) into `UploaderOptions`; raises `ValueError` with one line."""
    if isinstance(config, UploaderOptions):  # read already (`run` reads its settings apart: no dynaconf here)
        return _named_server(config, caller)
    from settings import SettingsError, build_settings, envvar
    from settings.legacy_ini import is_legacy_source
    from settings.loader import settings_files, validate_settings

    if _is_settings_object(config):
        return _named_server(options_from_settings(config), caller)
    if config is None:
        found = find_legacy_ini()
        if found is not None:
            log.info("%s: reading %s", caller, found)
            return options_from_settings(build_settings(legacy_ini=found))
        env = (os.environ.get("BEEMON_ENV") or "production").lower()
        settings = build_settings(env, validate=False)
        if not str(settings.get("ftp.host") or "").strip():
            looked = ", ".join(str(place) for place in legacy_ini_places())
            raise SettingsError(
                f"{caller} with config=None: no FTP server configured: no {LEGACY_INI_NAME} in {looked}, and"
                f" ftp.host is not set in {settings_files()[1]} nor {envvar('ftp.host')}; pass the orchestrator's"
                f" config, or set BEEMON_ENV=development for the embedded test server"
            )
        validate_settings(settings, env)
        return options_from_settings(settings)
    if is_legacy_source(config):
        return options_from_settings(build_settings(legacy_ini=config))
    raise SettingsError(
        f"{caller}: config of type {type(config).__name__} is not a configuration the uploader reads: give a"
        " ConfigParser, an object with get(section, option), a mapping of sections, an INI path, a settings"
        " object, UploaderOptions or None"
    )


def _named_server(options: UploaderOptions, caller: str) -> UploaderOptions:
    from settings import SettingsError

    if options.kind == "ftp" and not options.ftp.host.strip():
        raise SettingsError(f"{caller}: no FTP server configured: ftp.host is empty; name the server")
    return options
