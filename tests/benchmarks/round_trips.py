"""`python -m tests.benchmarks.round_trips`: one persistent session's files/s at 20 ms per reply, with and without HASH.

Round trips per file, seen from the clock: one `UploadSession` uploads `--files` files of 4 KiB into
one existing day folder the way a sink worker does (the next file's data port asked in the rename's
flight, the overwrite guard armed), against the bench's pyftpdlib that holds every reply back by
`--delay` (in a process of its own), once plainly and once answering HASH (SHA-256, as ProFTPD's
mod_digest does). The rate's ceiling is 1 / (round trips per file x delay); the figure printed
beside it is the time per file in delays. docs/benchmarks.md quotes it (run by hand, not in `make bench`).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from pipeline.dev.embedded_server import EmbeddedFtpServer
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadSession
from tests.benchmarks.ftp_server import POLL_TIMEOUT, DelayedHandler

USER, PASSWORD = "bench", "bench-round-trips"


def serve(root: str, delay: float, hash_command: bool) -> int:
    """The server side (a child process): print the port, serve until SIGTERM."""
    attributes = {"counts": collections.Counter(), "auth_failed_timeout": 0, "reply_delay": delay}
    server = EmbeddedFtpServer(
        root,
        USER,
        PASSWORD,
        handler_class=DelayedHandler,
        handler_attributes=attributes,
        poll_timeout=POLL_TIMEOUT,
        hash_command=hash_command,
    ).start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"PORT {server.port}", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0


def measure(work: Path, files: int, delay: float, hash_command: bool) -> tuple[float, str]:
    """(files/s, the check in force) of one session uploading `files` small files."""
    root = work / f"root-{int(hash_command)}"
    (root / "day").mkdir(parents=True)
    command = [sys.executable, "-m", "tests.benchmarks.round_trips", "--serve", str(root), f"--delay={delay}"]
    process = subprocess.Popen([*command, *(["--hash"] if hash_command else [])], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().split()[1])
        outbox = work / f"outbox-{int(hash_command)}"
        outbox.mkdir()
        names = [f"f{i:04d}.wav" for i in range(files)]
        for name in names:
            (outbox / name).write_bytes(os.urandom(4096))
        params = FtpParams("127.0.0.1", port, USER, PASSWORD, "/", timeout=30)
        with UploadSession(params) as session:
            session.upload(str(outbox / names[0]), f"day/{names[0]}", 4096, next_upload=lambda: True)
            started = time.monotonic()
            for index, name in enumerate(names[1:], 1):
                more = index < files - 1
                session.upload(
                    str(outbox / name), f"day/{name}", 4096, next_upload=lambda m=more: m, may_replace=lambda n: True
                )
            elapsed = time.monotonic() - started
            check = session.check
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return (files - 1) / elapsed, check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.round_trips", description=__doc__)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--serve", default="", help=argparse.SUPPRESS)
    parser.add_argument("--hash", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.delay, args.hash)
    with tempfile.TemporaryDirectory(prefix="beemon-bench-rtt-") as folder:
        for hash_command in (False, True):
            rate, check = measure(Path(folder), args.files, args.delay, hash_command)
            per_file = 1 / (rate * args.delay)
            print(
                f"server {'with' if hash_command else 'without'} HASH (check: {check}): {rate:.1f} files/s, "
                f"{per_file:.2f} delays per file, one session, {args.delay * 1000:.0f} ms per reply"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
