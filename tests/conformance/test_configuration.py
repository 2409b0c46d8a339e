"""`Uploader(queue, config)` takes what an orchestrator holds, through the one legacy mapping, and never
falls back to the development settings (the embedded server) when no server is named."""

from __future__ import annotations

import configparser
import os
import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipeline import Uploader, UploadHelper
from pipeline.app.config_sources import options_from_config
from settings import SettingsError, build_settings
from tests.conformance.conftest import REMOTE_ROOT, Station, ini_text


class OrchestratorConfig:
    """A beemon-style `Config`: not a ConfigParser, but it answers `get(section, option)`."""

    def __init__(self, parser: configparser.ConfigParser) -> None:
        self._parser = parser

    def get(self, section: str, option: str) -> str:
        return self._parser.get(section, option)


def shapes(station: Station) -> dict[str, Any]:
    parser = station.parser()
    sections = {name: dict(parser[name]) for name in parser.sections()}
    return {
        "ConfigParser": parser,
        "get(section, option)": OrchestratorConfig(parser),
        "mapping of sections": sections,
        "INI path": str(station.ini),
        "INI Path": station.ini,
        "dynaconf settings": build_settings(legacy_ini=station.ini),
        "UploaderOptions": options_from_config(station.ini),
        "None": None,
    }


SHAPES = [
    "ConfigParser",
    "get(section, option)",
    "mapping of sections",
    "INI path",
    "INI Path",
    "dynaconf settings",
    "UploaderOptions",
    "None",
]


@pytest.mark.parametrize("shape", SHAPES)
def test_every_config_shape_gives_the_legacy_ini_mapping(station: Station, shape: str):
    options = Uploader(queue.Queue(), shapes(station)[shape]).options
    assert options == options_from_config(station.ini)  # the same as --legacy-ini
    assert (options.ftp.host, options.ftp.port, options.ftp.remote_root) == (
        "127.0.0.1",
        station.server.port,
        REMOTE_ROOT,
    )
    assert options.ftp.password == station.credentials.password
    assert options.outbox == str(station.outbox)
    assert options.debounce_seconds == 0.2
    assert not options.embedded


def without_host(station: Station) -> None:
    station.ini.write_text(ini_text(station.server, station.credentials, station.outbox, host=False))


@pytest.mark.parametrize("shape", ["ConfigParser", "get(section, option)", "mapping of sections", "INI path", "None"])
def test_a_configuration_without_a_server_is_a_value_error_naming_what_is_missing(station: Station, shape: str):
    without_host(station)
    with pytest.raises(ValueError, match=r"no FTP server configured: \[ftp\] host is missing in ") as error:
        Uploader(queue.Queue(), shapes(station)[shape])
    assert "BEEMON_FTP__HOST" in str(error.value)
    assert station.credentials.password not in str(error.value)


def test_config_none_without_an_ini_is_a_value_error_naming_where_it_looked(clean_environment: Path):
    with pytest.raises(ValueError) as error:
        Uploader(queue.Queue(), None)
    message = str(error.value)
    assert "no FTP server configured: no beemon-config.ini in " in message
    assert str(clean_environment) in message  # the working directory
    assert "BEEMON_FTP__HOST" in message
    with pytest.raises(ValueError, match=r"no beemon-config\.ini in "):
        UploadHelper()


def test_config_none_uses_a_server_named_by_the_environment(
    clean_environment: Path, monkeypatch, ftp_server, credentials
):
    monkeypatch.setenv("BEEMON_FTP__HOST", "127.0.0.1")
    monkeypatch.setenv("BEEMON_FTP__USERNAME", credentials.username)
    monkeypatch.setenv("BEEMON_FTP__PASSWORD", credentials.password)
    options = Uploader(queue.Queue(), None).options
    assert options.ftp.host == "127.0.0.1" and not options.embedded


def test_the_embedded_server_only_where_named(clean_environment: Path, monkeypatch):
    """The development environment names it (make run, demo); nothing else falls back to it."""
    assert build_settings("development").ftp.host == "embedded"
    for env in ("production", "testing"):
        assert build_settings(env, validate=False).ftp.host != "embedded"
    monkeypatch.setenv("BEEMON_ENV", "development")
    assert Uploader(queue.Queue(), None).options.embedded  # asked for by name: BEEMON_ENV=development


def test_a_settings_object_without_a_server_is_refused(clean_environment: Path):
    with pytest.raises(SettingsError, match=r"ftp\.host is required in the production environment"):
        Uploader(queue.Queue(), build_settings("production"))


def test_command_line_legacy_ini_without_a_server_exits_2(station: Station):
    without_host(station)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--legacy-ini", str(station.ini), "run", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"beemon-uploader: no FTP server configured: [ftp] host is missing in legacy INI {station.ini}, and neither"
        f" {station.home.parent / 'site' / 'settings.toml'} nor BEEMON_FTP__HOST sets ftp.host; set the server in one"
        " of them"
    ]
    assert not (station.home / "var").exists()  # no embedded server root, no development outbox
