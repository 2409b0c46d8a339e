"""Fixtures for the reliability tests: a watched server, the uploader as a killable subprocess, two sizes.

Every test taking `scale` runs twice in principle: at the quick size in the default suite, and at
the soak size (marked `slow`, deselected unless asked for with `-m slow`; `make soak` does).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyftpdlib.handlers import FTPHandler

from pipeline.dev.embedded_server import EmbeddedFtpServer
from pipeline.outbox.lock import STATE_FOLDER
from tests.e2e.conftest import REMOTE_ROOT, STATION, ArrivalRecorder, Server, cli, recording_handler
from tests.ftp_faults import Faults
from tests.helpers import server_files
from tests.reliability.server import Watch, WatchedHandler

HERE = Path(__file__).parent


@dataclass(frozen=True)
class Scale:
    """How hard a test pushes: `quick` keeps the default suite fast, `soak` runs for minutes."""

    name: str
    files: int  # files the station writes in a torture run (backlog + live)
    video_bytes: tuple[int, int]
    audio_bytes: tuple[int, int]
    kills: int  # random SIGKILLs on top of the three aimed ones
    outage_seconds: float
    examples: int  # hypothesis examples per property
    churn_seconds: float

    def __str__(self) -> str:
        return self.name


QUICK = Scale("quick", 220, (600_000, 2_500_000), (40_000, 160_000), 2, 1.5, 60, 1.0)
SOAK = Scale("soak", 1500, (4_000_000, 16_000_000), (200_000, 1_000_000), 16, 20.0, 1500, 30.0)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scale" in metafunc.fixturenames:
        metafunc.parametrize(
            "scale",
            [QUICK, pytest.param(SOAK, marks=[pytest.mark.slow, pytest.mark.timeout(1800)])],
            ids=str,
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave this folder's soak variants out unless a marker expression was given (`-m slow`)."""
    if config.getoption("markexpr"):
        return
    soak = [item for item in items if HERE in Path(item.path).parents and item.get_closest_marker("slow")]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if item not in soak]


# --- the server


@dataclass
class WatchedServer(Server):
    """An e2e `Server` that also watches visibility, takes tripwires and injects `Faults`."""

    watch: Watch = field(default_factory=Watch)
    faults: Faults = field(default_factory=Faults)
    handler: type[FTPHandler] = WatchedHandler
    attributes: dict[str, object] = field(default_factory=dict)
    max_cons_per_ip: int = 0  # pyftpdlib's cap (0: none); beyond it a new connection gets 421

    def stop(self) -> None:
        self.server.stop()

    def start_again(self) -> None:
        """A fresh server process on the same port and root (the old one must be stopped)."""
        self.server = _embedded(self, self.server.port)

    def files(self) -> dict[str, bytes]:
        """Every file on the server but the day manifests, by path under the server root."""
        return server_files(self.root)

    def digests(self) -> dict[str, str]:
        return {path: hashlib.sha256(data).hexdigest() for path, data in self.files().items()}


def _embedded(server: WatchedServer, port: int) -> EmbeddedFtpServer:
    attributes: dict[str, object] = {"faults": server.faults, "watch": server.watch, "auth_failed_timeout": 0}
    attributes.update(server.attributes)
    return EmbeddedFtpServer(
        server.root,
        server.username,
        server.password,
        port=port,
        handler_class=recording_handler(server.arrivals, server.handler),
        handler_attributes=attributes,
        max_cons_per_ip=server.max_cons_per_ip,
    ).start()


@pytest.fixture
def watched_server(tmp_path: Path) -> Iterator[Callable[..., WatchedServer]]:
    """`watched_server(faults=..., handler=..., max_cons_per_ip=..., **handler_attributes)`: started; stopped at teardown."""
    started: list[WatchedServer] = []

    def make(
        faults: Faults | None = None,
        handler: type[FTPHandler] = WatchedHandler,
        max_cons_per_ip: int = 0,
        **attributes: object,
    ) -> WatchedServer:
        root = tmp_path / f"ftp-root-{len(started)}"
        root.mkdir()
        password = "pw-" + hashlib.sha256(os.urandom(16)).hexdigest()[:20]
        watch = Watch(root=root)
        server = WatchedServer(
            None,  # type: ignore[arg-type]
            root,
            "station",
            password,
            ArrivalRecorder(),
            watch=watch,
            faults=faults or Faults(),
            handler=handler,
            attributes=attributes,
            max_cons_per_ip=max_cons_per_ip,
        )
        server.server = _embedded(server, 0)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def remote_of(relative: str) -> str:
    """Where a file of the station lands, as a path under the server root."""
    return f"{REMOTE_ROOT.lstrip('/')}/{STATION}/{relative}"


# --- the uploader as a subprocess


class UploaderProcess:
    """`beemon-uploader ARGS` in its own process group (so SIGKILL takes the sink child too), logging to a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str, preexec: list[str] | None = None) -> None:
        self.log = log
        self._out = log.open("w")
        self.process = subprocess.Popen(
            [*(preexec or []), *cli(*args)],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group at once, as a power cut or the OOM killer would, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self._out.close()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the uploader (the parent, as a terminal or the orchestrator would); its exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._out.close()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            self._out.close()

    def group(self) -> list[int]:
        """The pids in the uploader's process group (itself, the sink, multiprocessing's helpers)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.process.pid:
                        pids.append(int(entry.name))
                except ProcessLookupError:
                    continue
        return sorted(pids)


@pytest.fixture
def start_uploader(tmp_path: Path) -> Iterator[Callable[..., UploaderProcess]]:
    """`start_uploader(env, *args)` (default `run --stats-interval 0`); anything left running is killed at teardown."""
    started: list[UploaderProcess] = []

    def start(env: dict[str, str], *args: str, preexec: list[str] | None = None) -> UploaderProcess:
        log = tmp_path / f"uploader-{len(started)}.log"
        process = UploaderProcess(env, log, *(args or ("run", "--stats-interval", "0")), preexec=preexec)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.alive():
            process.kill()


def outbox_files(outbox: Path) -> list[str]:
    """Every file (or link) left in the outbox, relative, sorted; the uploader's state folder (its lock) left out."""
    return sorted(
        str(p.relative_to(outbox))
        for p in outbox.rglob("*")
        if (p.is_file() or p.is_symlink()) and STATE_FOLDER not in p.relative_to(outbox).parts
    )


def python() -> str:
    return sys.executable
