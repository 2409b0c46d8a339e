"""What every workload needs: files with known content, a server process, the real uploader as a process, clocks.

The uploader is `beemon-uploader run` itself (the console script of this venv), configured only
through `BEEMON_*` environment variables, as a station would be; the bench watches the outcome
from outside: final names on the server, local copies gone.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

STATION = "bench"
DAY = "2024-05-01"
REMOTE_ROOT = "/data"
USER = "bench"
#: One random MiB, tiled into every file (with the file's name in front, so no two files are equal).
_BLOCK = os.urandom(1 << 20)
_SRC = Path(__file__).resolve().parents[2]


def content(name: str, size: int) -> bytes:
    """The bytes of the bench file `name`: reproducible, so the server's copy can be checked exactly."""
    head = f"{name}\n".encode()
    body = head + _BLOCK * (size // len(_BLOCK) + 1)
    return body[:size]


def file_name(index: int, ext: str = "wav", tag: str = "f", day: str = DAY) -> str:
    return f"{STATION}@{day}@{tag}-{index:06d}.{ext}"


def write_files(folder: Path, names: Iterable[str], size: int, *, mtime: float | None = None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        path = folder / name
        path.write_bytes(content(name, size))
        if mtime is not None:
            os.utime(path, (mtime, mtime))
        paths.append(path)
    return paths


def sensor_of(name: str) -> str:
    return {"wav": "audio", "h264": "video"}.get(name.rsplit(".", 1)[-1], "misc")


def remote_dir(server_root: Path, sensor: str = "audio", day: str = DAY) -> Path:
    """Where the uploader puts a file of `sensor` and `day` (its remote-path mapping, on the server's disk)."""
    return server_root / REMOTE_ROOT.strip("/") / STATION / day / sensor


def verify(remote: Path, names: Iterable[str], size: int, *, exact: bool) -> list[str]:
    """The problems with the server's copies: missing, wrong size, or (with `exact`) wrong bytes."""
    problems = []
    for name in names:
        path = remote / name
        if not path.is_file():
            problems.append(f"missing {name}")
        elif path.stat().st_size != size:
            problems.append(f"{name}: {path.stat().st_size} bytes, expected {size}")
        elif exact and path.read_bytes() != content(name, size):
            problems.append(f"{name}: content differs")
    return problems


def leftovers(folder: Path) -> list[str]:
    """Temporary names left on the server (`.x.part`)."""
    return sorted(p.name for p in folder.rglob(".*.part")) if folder.exists() else []


def _listing(folder: Path) -> set[str]:
    try:
        return set(os.listdir(folder))
    except FileNotFoundError:
        return set()


def delivered(names: Iterable[str], remote: Path, local: Path | None) -> bool:
    """Every name is on the server (final name) and, when `local` is given, gone from it."""
    wanted = set(names)
    return wanted <= _listing(remote) and (local is None or not (wanted & _listing(local)))


def wait_delivered(
    names: Iterable[str], remote: Path, local: Path | None, *, timeout: float, interval: float = 0.01
) -> float:
    """Block until every name is on the server (final name) and, when `local` is given, gone from it; the time then."""
    wanted = set(names)
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        if delivered(wanted, remote, local):
            return now
        if now > deadline:
            missing = len(wanted - _listing(remote))
            raise TimeoutError(f"{missing} of {len(wanted)} files not on the server after {timeout:.0f} s")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the uploader


def uploader_command() -> list[str]:
    script = Path(sys.executable).with_name("beemon-uploader")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.cli"]


@dataclass
class Uploader:
    """`beemon-uploader run` in production settings, aimed at a bench server (or a closed port)."""

    work: Path
    outbox: Path
    port: int
    password: str = ""
    debounce: float = 0.2
    observer: str = "inotify"
    connections: int = 4
    stats_interval: float = 0
    username: str = USER
    remote_root: str = REMOTE_ROOT
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def log_path(self) -> Path:
        return self.work / f"uploader-{self.outbox.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def env(self) -> dict[str, str]:
        site = self.work / "site"
        site.mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
        env.update(
            BEEMON_ENV="production",
            BEEMON_CONFIG_DIR=str(site),
            BEEMON_LOCAL_OUTPUT_DIRECTORY=str(self.outbox),
            BEEMON_STATION=STATION,
            BEEMON_FTP__HOST="127.0.0.1",
            BEEMON_FTP__PORT=str(self.port),
            BEEMON_FTP__USERNAME=self.username,
            BEEMON_FTP__PASSWORD=self.password or "unused",
            BEEMON_FTP__REMOTE_ROOT=self.remote_root,
            BEEMON_FTP__CONNECTIONS=str(self.connections),
            BEEMON_UPLOAD__DEBOUNCE_SECONDS=str(self.debounce),
            BEEMON_WATCH__OBSERVER=self.observer,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def start(self, *, wait: bool = True, timeout: float = 60) -> Uploader:
        """Start `run`; with `wait`, return once it watches the outbox and its sessions had time to log in."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        command = [*uploader_command(), "run", "--stats-interval", str(self.stats_interval)]
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(command, cwd=self.work, env=self.env(), stdout=log, stderr=subprocess.STDOUT)
        log.close()
        if wait:
            self.wait_for_log("watching ", timeout)
            time.sleep(0.5)  # the sink's sessions log in meanwhile (at most a few round trips)
        return self

    def run_once(self, timeout: float = 900) -> int:
        """`run --once` to its exit instead (its output in the log); returns the exit code."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            command = [*uploader_command(), "run", "--once"]
            done = subprocess.run(
                command, cwd=self.work, env=self.env(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout
            )
        return done.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"the uploader exited ({self.process.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not logged within {timeout} s:\n{self.log()[-3000:]}")
            time.sleep(0.02)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (a clean stop, as systemd does), then wait; returns the exit code."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def __enter__(self) -> Uploader:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def transfer_seconds(self) -> list[float]:
        """Each delivery's duration as the sink logged it ("delivered a -> b (n B, s s)")."""
        return [float(s) for s in re.findall(r"delivered .* B, ([0-9.]+) s\)", self.log())]


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path
