"""End-to-end fixtures: a loopback server that records arrivals, and `beemon-uploader` as a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyftpdlib.handlers import FTPHandler

from pipeline.dev.embedded_server import EmbeddedFtpServer
from pipeline.sink.manifest import MANIFEST_NAME

REMOTE_ROOT = "/data"
STATION = "rpi4-test"


class ArrivalRecorder:
    """The order in which final names appeared on the server (RNTO, or STOR of a non-temporary name)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.names: list[str] = []

    def add(self, path: str) -> None:
        if os.path.basename(path) == MANIFEST_NAME:  # the day's SHA256SUMS is not a station file arriving
            return
        with self.lock:
            self.names.append(os.path.basename(path))

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.names)


def recording_handler(recorder: ArrivalRecorder, base: type[FTPHandler] = FTPHandler) -> type[FTPHandler]:
    class RecordingHandler(base):  # type: ignore[misc, valid-type]
        def ftp_RNTO(self, path: str) -> object:
            result = super().ftp_RNTO(path)
            if result:
                recorder.add(path)
            return result

        def on_file_received(self, file: str) -> None:
            if not os.path.basename(file).startswith("."):
                recorder.add(file)

    return RecordingHandler


@dataclass
class Server:
    server: EmbeddedFtpServer
    root: Path
    username: str
    password: str
    arrivals: ArrivalRecorder = field(default_factory=ArrivalRecorder)

    def remote(self, relative: str) -> Path:
        return self.root / REMOTE_ROOT.lstrip("/") / STATION / relative


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[EmbeddedFtpServer] = []

    def make(handler_base: type[FTPHandler] = FTPHandler, **handler_attributes: object) -> Server:
        root = tmp_path / f"ftp-root-{len(started)}"
        username, password = "station", secrets.token_urlsafe(12)
        recorder = ArrivalRecorder()
        server = EmbeddedFtpServer(
            root,
            username,
            password,
            handler_class=recording_handler(recorder, handler_base),
            handler_attributes=handler_attributes,
        ).start()
        started.append(server)
        return Server(server, root, username, password, recorder)

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox"
    path.mkdir()
    return path


def uploader_env(server: Server, outbox: Path, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The environment of a `beemon-uploader` subprocess: testing settings aimed at `server`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    env.update(
        BEEMON_ENV="testing",
        BEEMON_CONFIG_DIR=str(site),
        BEEMON_LOCAL_OUTPUT_DIRECTORY=str(outbox),
        BEEMON_STATION=STATION,
        BEEMON_FTP__HOST="127.0.0.1",
        BEEMON_FTP__PORT=str(server.server.port),
        BEEMON_FTP__USERNAME=server.username,
        BEEMON_FTP__PASSWORD=server.password,
        BEEMON_FTP__REMOTE_ROOT=REMOTE_ROOT,
        BEEMON_UPLOAD__DEBOUNCE_SECONDS="0.2",
        BEEMON_UPLOAD__RETRY_BASE_SECONDS="0.05",
        BEEMON_UPLOAD__RETRY_MAX_SECONDS="0.5",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def run_cli(
    env: dict[str, str], *args: str, timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd)
