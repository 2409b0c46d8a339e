"""The daemon as systemd runs it: `beemon-uploader run` as a real process, its log in a file, a notify socket."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import cli, make_server, outbox, uploader_env
from tests.helpers import wait_until

__all__ = ["Daemon", "NotifySocket", "make_server", "outbox", "uploader_env", "wait_until"]


class NotifySocket:
    """A unix datagram socket standing in for systemd's: every message the uploader sends, with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def drain(self) -> list[tuple[float, dict[str, str]]]:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append((time.monotonic(), fields))

    def mark(self) -> float:
        """Now, after reading what already arrived (so that `since=` this counts only later messages)."""
        self.drain()
        return time.monotonic()

    def with_key(self, key: str, since: float = 0.0) -> list[dict[str, str]]:
        return [fields for at, fields in self.drain() if key in fields and at >= since]

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """`beemon-uploader run` with its stderr in a file (so JOURNAL_STREAM can name it)."""

    def __init__(self, env: dict[str, str], log_path: Path, *args: str) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 - open for the process's lifetime
        self.env = dict(env)
        if self.env.get("JOURNAL_STREAM") == "this-log":
            st = os.fstat(self._log.fileno())
            self.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        self.process = subprocess.Popen(cli("run", *args), env=self.env, stdout=self._log, stderr=self._log)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        return wait_until(lambda: re.search(pattern, self.log()), timeout)  # type: ignore[return-value]

    def sink_pid(self) -> int:
        """The spawned sink process (not multiprocessing's resource tracker)."""

        def find() -> int | None:
            for task in Path(f"/proc/{self.process.pid}/task").iterdir():
                for child in (task / "children").read_text().split():
                    command = Path(f"/proc/{child}/cmdline").read_bytes()
                    if b"spawn_main" in command and b"resource_tracker" not in command:
                        return int(child)
            return None

        return wait_until(find, 30)  # type: ignore[return-value]

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.kill()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()
