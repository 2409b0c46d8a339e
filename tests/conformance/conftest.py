"""Conformance fixtures: a station configured the original way, against the real loopback server.

`station` writes a `beemon-config.ini` (the original's configuration) naming the loopback server of
tests/conftest.py, clears every `BEEMON_*` variable (no environment names anything) and makes the
INI's folder the working directory, as an orchestrator started from its repository would have it.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.dev.embedded_server import EmbeddedFtpServer
from tests.conftest import ServerFactory
from tests.ftp_faults import Faults
from tests.helpers import Credentials, write_file

REMOTE_ROOT = "/usr/local/bee/beemon"
STATION = "rpi4-11"
DAY = "2022-07-19"

__all__ = ["DAY", "REMOTE_ROOT", "STATION", "Station"]


@dataclass
class Station:
    """The orchestrator's side: its folder, INI, outbox, and the server's root on disk."""

    home: Path
    ini: Path
    outbox: Path
    ftp_root: Path
    server: EmbeddedFtpServer
    credentials: Credentials

    def parser(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(self.ini)
        return parser

    def recording(self, sensor: str, stamp: str, ext: str, content: bytes) -> Path:
        """A finished recording, written and closed the way a recorder does."""
        return write_file(self.outbox / sensor / DAY / f"{STATION}@{DAY}@{stamp}.{ext}", content)

    def remote(self, sensor: str, name: str) -> Path:
        """Where the file lands on the server's disk: <root>/<station>/<date>/<sensor>/<name>."""
        return self.ftp_root / REMOTE_ROOT.lstrip("/") / STATION / DAY / sensor / name

    def on_server(self, remote_path: str) -> Path:
        return self.ftp_root / remote_path.lstrip("/")


def ini_text(server: EmbeddedFtpServer, credentials: Credentials, outbox: Path, *, host: bool = True) -> str:
    lines = [
        "[global]",
        f"root_upload_directory = {REMOTE_ROOT}",
        f"local_output_directory = {outbox}",
        "[ftp]",
        f"username = {credentials.username}",
        f"password = {credentials.password}",
        f"port = {server.port}",
        "upload_delay = 0.2",
    ]
    if host:
        lines.insert(4, "host = 127.0.0.1")
    return "\n".join(lines) + "\n"


@pytest.fixture
def faults() -> Faults:
    """The loopback server's journal (and knobs): every command it received."""
    return Faults()


@pytest.fixture
def ftp_server(make_server: ServerFactory, faults: Faults) -> EmbeddedFtpServer:
    return make_server(faults=faults)


@pytest.fixture
def clean_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No `BEEMON_*` variable, an empty site folder, a working directory of the test's own."""
    for name in [n for n in os.environ if n.startswith("BEEMON_")]:
        monkeypatch.delenv(name)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("BEEMON_CONFIG_DIR", str(site))
    monkeypatch.setenv("BEEMON_STATION", STATION)
    home = tmp_path / "orchestrator"
    home.mkdir()
    monkeypatch.chdir(home)
    return home


@pytest.fixture
def station(clean_environment: Path, ftp_server, credentials, outbox, ftp_root) -> Iterator[Station]:
    ini = clean_environment / "beemon-config.ini"
    ini.write_text(ini_text(ftp_server, credentials, outbox))
    yield Station(clean_environment, ini, outbox, ftp_root, ftp_server, credentials)
