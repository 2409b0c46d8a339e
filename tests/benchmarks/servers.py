"""The bench's FTP servers, one interface: pyftpdlib (plain, or holding every reply back) and vsftpd.

- `pyftpdlib`: the bench's pyftpdlib in a process of its own (`ftp_server.py`); with `delay` it
  holds every reply back to stand in for a link's round trip. It counts the commands it receives.
- `vsftpd`: Debian's vsftpd (`make servers` unpacks it), in the foreground on a loopback port with
  its own configuration (the tests' writer, `tests.servers.vsftpd_settings`). C, one process per
  session: on a 2-core machine it is not what limits the loopback rows, which pyftpdlib is (it
  shares the cores with the client and is Python). It counts nothing, and it has no delay.

Either way a `Server` says where uploads land on disk (`root`), how to log in, and the server's
path of `root` (`prefix`): vsftpd's anonymous sessions see the real file system, not a chroot.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.harness import REMOTE_ROOT, USER, Uploader

_SRC = Path(__file__).resolve().parents[2]
KINDS = ("vsftpd", "pyftpdlib")
#: Where the servers keep what they receive, unless `BEEMON_BENCH_SERVER_STORAGE=disk`: a tmpfs, when one is
#: mounted there with room for the largest row, the hash row's: its server holds two files of 1 GiB and the
#: temporary copy of a third while it is sent again (`hash_cost --gib N` run alone needs 3 x N GiB: above 1, run
#: it with the disk storage).
MEMORY = Path("/dev/shm")
MEMORY_ROOM = 4 << 30


@functools.cache
def memory_storage() -> bool:
    """Whether the servers' files go to memory (`MEMORY`), the bench's default, or to the work folder's disk.

    A row measures the client. vsftpd writing 2,000 small files to this VM's ext4 disk cost from 0.12 to
    0.35 ms of CPU per file from one run to the next (2026-12-02, the same client: the file system's
    allocation state, not the client), and the small-files row read 0.75x of lftp with the disk cheap, 0.83-0.88x
    with it costly (a slow server hides the client); the large files' writes swing with the page cache (see
    docs/benchmarks.md). In memory a small file cost the server 0.06-0.08 ms in every run, and the row read
    0.60-0.70x. Decided once per process: every row, and the report's line saying where, see the same choice.
    """
    if os.environ.get("BEEMON_BENCH_SERVER_STORAGE", "memory") == "disk":
        return False
    try:
        with open("/proc/self/mounts") as mounts:
            tmpfs = any(line.split()[1:3] == [str(MEMORY), "tmpfs"] for line in mounts)
        room = os.statvfs(MEMORY)
    except OSError:
        return False
    return tmpfs and room.f_bavail * room.f_frsize >= MEMORY_ROOM and os.access(MEMORY, os.W_OK)


def _storage(work: Path) -> Path:
    """A fresh folder for one server's root: in memory (`memory_storage`) or under `work`."""
    if memory_storage():
        return Path(tempfile.mkdtemp(prefix="beemon-bench-server-", dir=MEMORY))
    return work


@dataclass
class Server:
    kind: str
    root: Path
    port: int
    password: str
    delay: float
    stopper: Callable[[], dict[str, int]]
    username: str = USER
    #: the server's path of `root` ('' when a session's / is `root`)
    prefix: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    #: the server's (master) process
    pid: int = 0

    def stop(self) -> dict[str, int]:
        """End the server; returns the commands it received, by verb (none for vsftpd)."""
        self.counts = self.stopper() or self.counts
        return self.counts

    def path(self, remote: str) -> str:
        """The server's path of `remote`, a path under `root` ("/loop")."""
        return f"{self.prefix}{remote}"

    @property
    def remote_root(self) -> str:
        """The uploader's `ftp.remote_root` (its files land in `root / REMOTE_ROOT`)."""
        return self.path(REMOTE_ROOT)


def _pyftpdlib(work: Path, storage: Path, delay: float) -> Server:
    root = storage / f"server-{secrets.token_hex(3)}"
    root.mkdir(parents=True)
    password = secrets.token_urlsafe(12)
    stats = work / f"{root.name}.json"
    command = [sys.executable, "-m", "tests.benchmarks.ftp_server", "--root", str(root), "--user", USER]
    command += [f"--password={password}", f"--delay={delay}", f"--stats={stats}"]
    process = subprocess.Popen(command, cwd=_SRC, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"the bench server did not start: {line!r}")

    def stop() -> dict[str, int]:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(stats.read_text()))
        return {}

    return Server("pyftpdlib", root, int(line.split()[1]), password, delay, stop, pid=process.pid)


def _vsftpd(storage: Path) -> Server:
    from tests.servers import find_server, start_vsftpd

    if find_server("vsftpd", "vsftpd") is None:
        raise SystemExit("vsftpd is not installed: run `make servers` (as root) first")
    started = start_vsftpd(storage / f"vsftpd-{secrets.token_hex(3)}")

    def stop() -> dict[str, int]:
        started.stop()
        return {}

    return Server(
        "vsftpd",
        started.root,
        started.port,
        "x",
        0.0,
        stop,
        username=started.username,
        prefix=str(started.root),
        pid=started.process.pid,
    )


@contextlib.contextmanager
def ftp_server(work: Path, delay: float = 0.0, kind: str = "pyftpdlib") -> Iterator[Server]:
    """A fresh server of `kind` on a fresh root (in memory, or under `work`: `memory_storage`); stopped, and what
    it received removed, on the way out."""
    if kind not in KINDS:
        raise ValueError(f"unknown server kind {kind!r}: one of {', '.join(KINDS)}")
    if kind == "vsftpd" and delay:
        raise ValueError("vsftpd holds nothing back: the delayed rows run on pyftpdlib")
    storage = _storage(work)
    try:
        server = _vsftpd(storage) if kind == "vsftpd" else _pyftpdlib(work, storage, delay)
        try:
            yield server
        finally:
            server.stop()
            shutil.rmtree(server.root, ignore_errors=True)  # (checked inside: the next phase starts clean)
    finally:
        if storage != work:
            shutil.rmtree(storage, ignore_errors=True)


def uploader(work: Path, outbox: Path, server: Server, **options: Any) -> Uploader:
    """`beemon-uploader run` aimed at `server` (see `Uploader` for `options`)."""
    return Uploader(
        work,
        outbox,
        server.port,
        server.password,
        username=server.username,
        remote_root=server.remote_root,
        **options,
    )
