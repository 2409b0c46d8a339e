"""What a user would use instead, measured on the same files and servers as the uploader.

- `per_login_loop`: the original uploader's way: log in, STOR (ftplib's 8 KiB blocks), QUIT and
  delete the local file, one file at a time.
- `single_session`: one ftplib session, 1 MiB blocks, no rename or check: what Python can push.
- `copy_files`: `cp` of the same files (the local disk's, here the page cache's, limit).
- `lftp_mirror`: `lftp mirror -R --parallel=N`, when lftp is installed.
- `polling_observer`: watchdog's PollingObserver alone on an outbox (the original's observer).
"""

from __future__ import annotations

import ftplib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.servers import Server


@dataclass(frozen=True)
class Timed:
    seconds: float
    cpu_seconds: float = 0.0  # of a child process (rusage), when the baseline ran in one


def _login(server: Server) -> ftplib.FTP:
    ftp = ftplib.FTP()
    ftp.connect("127.0.0.1", server.port, timeout=30)
    ftp.login(server.username, server.password)
    return ftp


def make_remote_dir(server: Server, path: str) -> None:
    """Make `path` (under the server's root: "/loop")."""
    ftp = _login(server)
    try:
        ftp.mkd(server.path(path))
    finally:
        ftp.quit()


def per_login_loop(server: Server, files: list[Path], remote: str) -> Timed:
    """One login per file, one file at a time, then the local delete (`remote`, under the root, must exist)."""
    started = time.monotonic()
    for path in files:
        ftp = _login(server)
        with path.open("rb") as file:
            ftp.storbinary(f"STOR {server.path(remote)}/{path.name}", file)
        ftp.quit()
        path.unlink()
    return Timed(time.monotonic() - started)


def single_session(server: Server, files: list[Path], remote: str, blocksize: int = 1 << 20) -> Timed:
    """One session for all files, `blocksize` blocks, nothing else (`remote`, under the root, must exist)."""
    started = time.monotonic()
    ftp = _login(server)
    for path in files:
        with path.open("rb") as file:
            ftp.storbinary(f"STOR {server.path(remote)}/{path.name}", file, blocksize=blocksize)
    ftp.quit()
    return Timed(time.monotonic() - started)


def copy_files(files: list[Path], destination: Path) -> Timed:
    destination.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run(["cp", "--", *map(str, files), str(destination)], check=True)
    return Timed(time.monotonic() - started)


def lftp_available() -> bool:
    return shutil.which("lftp") is not None


def lftp_mirror(server: Server, local: Path, remote: str, parallel: int = 4) -> Timed:
    """`lftp mirror -R --parallel=N local remote` (`remote` under the root); CPU from the child's rusage (user + sys)."""
    script = (
        "set ftp:ssl-allow no; set net:max-retries 2; set cmd:fail-exit yes; "
        f"open -u {server.username},{server.password} -p {server.port} 127.0.0.1; "
        f"mirror -R --parallel={parallel} {local} {server.path(remote)}"
    )
    started = time.monotonic()
    process = subprocess.Popen(["lftp", "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        assert process.stderr is not None
        raise RuntimeError(f"lftp failed ({process.returncode}): {process.stderr.read().decode(errors='replace')}")
    return Timed(seconds, usage.ru_utime + usage.ru_stime)


POLLING_OBSERVER = """
import sys, time
from watchdog.events import FileSystemEventHandler
from watchdog.observers.polling import PollingObserver
observer = PollingObserver(timeout=float(sys.argv[2]))
observer.schedule(FileSystemEventHandler(), sys.argv[1], recursive=True)
observer.start()
print("started", flush=True)
time.sleep(1e9)
"""


def polling_observer(outbox: Path, interval: float = 1.0) -> subprocess.Popen[str]:
    """watchdog's PollingObserver alone on `outbox`, in a process of its own (read its CPU from /proc)."""
    process = subprocess.Popen(
        [sys.executable, "-c", POLLING_OBSERVER, str(outbox), str(interval)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    process.stdout.readline()
    return process
