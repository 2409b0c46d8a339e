"""Plain helpers shared by the tests, each defined once here (fixtures stay in the conftest.py files).

Waiting (`wait_until`), writing files as a station does (`write_file`, `write`), a settable clock
(`Clock`), a job with short defaults (`job`), the account's FtpParams (`params_for`), a free port,
the uploader's files in an outbox (`station_files`), and the output lines that mention something.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from operators.model import Priority, UploadJob
from pipeline.dev.embedded_server import EmbeddedFtpServer
from pipeline.ftp.params import FtpParams
from pipeline.outbox.lock import STATE_FOLDER
from pipeline.sink.manifest import MANIFEST_NAME

#: The outbox of the jobs and events made without a file behind them.
OUTBOX = "/outbox"


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.02) -> object:
    """Poll `predicate` until it returns something truthy (returned), or fail after `timeout` seconds.

    The default deadline is long enough for a process to start on a busy two-core machine; a passing
    test never waits for it, and a test that needs a shorter one says so.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def write_file(path: Path, content: bytes) -> Path:
    """Create folders as needed, write, close: the station's normal way of finishing a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    return path


def write(path: Path, size: int) -> bytes:
    """`size` random bytes written to `path` (folders made as needed); returns them."""
    data = os.urandom(size)
    write_file(path, data)
    return data


def station_files(outbox: Path, pattern: str = "*") -> list[Path]:
    """The files under `outbox` matching `pattern`, leaving out the uploader's own state folder (its lock)."""
    return [p for p in outbox.rglob(pattern) if p.is_file() and STATE_FOLDER not in p.relative_to(outbox).parts]


def server_files(root: Path) -> dict[str, bytes]:
    """The station's files on a server, by path under `root`: every file but the per-day manifests
    (SHA256SUMS, and its temporary name while one is written or after a kill cut the writing: the
    next manifest upload of that day replaces it; tests/reliability/test_integrity.py asserts on them)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST_NAME, f".{MANIFEST_NAME}.part")
    }


def lines_with(output: str, text: str) -> list[str]:
    """The lines of `output` that contain `text`."""
    return [line for line in output.splitlines() if text in line]


def free_port() -> int:
    """A loopback port nobody listens on now (for a server or endpoint that must not be there yet)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Clock:
    """A clock the test sets: `clock.now += 10` instead of sleeping."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def job(
    name: str,
    priority: Priority = Priority.LIVE,
    *,
    size: int = 10,
    mtime_ns: int = 1,
    remote: str = "",
) -> UploadJob:
    """The job for `name` (under `OUTBOX` unless absolute), sent to `/remote/<name>` unless told."""
    path = name if name.startswith("/") else f"{OUTBOX}/{name}"
    return UploadJob(path, remote or f"/remote/{name}", size, mtime_ns, priority)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def params_for(server: EmbeddedFtpServer, credentials: Credentials, **changes: object) -> FtpParams:
    """FtpParams for `server` and the test account, remote root `/upload`, short timeouts."""
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "username": credentials.username,
        "password": credentials.password,
        "remote_root": "/upload",
        "timeout": 5.0,
    }
    values.update(changes)
    return FtpParams(**values)  # type: ignore[arg-type]
