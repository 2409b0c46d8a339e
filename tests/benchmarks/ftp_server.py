"""The bench's FTP servers: pyftpdlib on loopback in a process of its own, optionally holding every reply back.

A server in its own process keeps its CPU out of the bench's measurements and its GIL away from
the clients. `--delay` stands in for a link's round trip: every byte the control connection
sends is held back that long (in order), so each command a client waits for costs one delay,
as on a real link. TCP handshakes and the data connections are not delayed (loopback), which
flatters a client that opens many connections: the one-login-per-file baseline.

Run: ``python -m tests.benchmarks.ftp_server --root DIR --user U --password P [--delay 0.02]``;
it prints ``PORT <n>`` once listening and, on SIGTERM, writes the commands it received (counted by
verb) to ``--stats`` as JSON.

Debug aid (opt-in, off by default): with ``BEEMON_BENCH_TIMELINE=<file>`` in its environment the
server appends one line per command received and per reply released (wall clock, session, text;
the password masked), to see a client's flights (sort it by time).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, ClassVar

from pyftpdlib.handlers import DTPHandler, FTPHandler

from pipeline.dev.embedded_server import EmbeddedFtpServer

#: The server loop's longest wait; held replies are released on time regardless (see EmbeddedFtpServer).
POLL_TIMEOUT = 0.05
#: Larger reads of the data connection than pyftpdlib's 64 KiB: the server should not be what limits MB/s.
DATA_READ_SIZE = 1 << 20


#: Opt-in timeline of the control connections (see the module's docstring); None: off.
TIMELINE = os.environ.get("BEEMON_BENCH_TIMELINE") or None
_timeline_lock = threading.Lock()


def note(handler: object, direction: str, text: str) -> None:
    """One timeline line: wall clock, the session (its client port), direction, text (PASS masked)."""
    if TIMELINE is None:
        return
    if text.upper().startswith("PASS "):
        text = "PASS ***"
    port = getattr(handler, "remote_port", "?")
    with _timeline_lock, open(TIMELINE, "a") as file:
        file.write(f"{time.time():.4f} {port} {direction} {text.strip()!r}\n")


class BenchDTPHandler(DTPHandler):
    ac_in_buffer_size = DATA_READ_SIZE


#: Commands naming the per-day manifest are counted again under "SHA256SUMS:<verb>" (its cost in the report).
MANIFEST = "SHA256SUMS"


class CountingHandler(FTPHandler):
    """Counts every command by verb (round-trip accounting in the report), and those naming the manifest apart."""

    dtp_handler = BenchDTPHandler
    counts: ClassVar[collections.Counter[str]] = collections.Counter()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        self.counts[cmd] += 1
        note(self, ">", line)
        if MANIFEST in arg:
            self.counts[f"{MANIFEST}:{cmd}"] += 1
        super().pre_process_command(line, cmd, arg)

    def on_connect(self) -> None:
        note(self, "+", "connected")

    def on_disconnect(self) -> None:
        note(self, "-", "closed")


class HeldReplies:
    """Mixin for an `FTPHandler`: everything sent on the control connection is held back `reply_delay` s, in order.

    Each command a client waits for costs one delay, as over a link; replies to pipelined commands
    come back together. Put it before the handler class: ``class H(HeldReplies, FTPHandler)``.
    """

    reply_delay = 0.02

    def push(self, data: str) -> None:
        pending: deque[tuple[float, str]] = self.__dict__.setdefault("_held", deque())
        pending.append((time.monotonic() + self.reply_delay, data))
        if len(pending) == 1:
            self.ioloop.call_later(self.reply_delay, self._release)  # type: ignore[attr-defined]

    def _release(self) -> None:
        pending: deque[tuple[float, str]] = self.__dict__["_held"]
        now = time.monotonic()
        while pending and pending[0][0] <= now + 0.0005:
            _, data = pending.popleft()
            if not self._closed:  # type: ignore[attr-defined]
                note(self, "<", data)
                super().push(data)  # type: ignore[misc]
        if pending:
            self.ioloop.call_later(max(0.0, pending[0][0] - now), self._release)  # type: ignore[attr-defined]
        elif self.__dict__.pop("_close_after_release", False) and not self._closed:  # type: ignore[attr-defined]
            super().close_when_done()  # type: ignore[misc]

    def close_when_done(self) -> None:
        if self.__dict__.get("_held"):
            self._close_after_release = True
        else:
            super().close_when_done()  # type: ignore[misc]


class DelayedHandler(HeldReplies, CountingHandler):
    """Holds everything sent on the control connection back by `reply_delay` seconds, keeping its order."""


def serve(root: str, user: str, password: str, delay: float) -> EmbeddedFtpServer:
    """A started server (in a thread of this process); `delay` > 0 holds every reply back."""
    handler: type[FTPHandler] = DelayedHandler if delay > 0 else CountingHandler
    attributes: dict[str, Any] = {"counts": collections.Counter(), "auth_failed_timeout": 0}
    if delay > 0:
        attributes["reply_delay"] = delay
    server = EmbeddedFtpServer(
        root, user, password, handler_class=handler, handler_attributes=attributes, poll_timeout=POLL_TIMEOUT
    )
    server.counts = attributes["counts"]  # type: ignore[attr-defined]
    return server.start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every reply is held back")
    parser.add_argument("--stats", default="", help="write command counts here (JSON) on SIGTERM")
    args = parser.parse_args(argv)
    server = serve(args.root, args.user, args.password, args.delay)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f"PORT {server.port}", flush=True)
    while not done.wait(1.0):
        pass
    server.stop()
    if args.stats:
        with open(args.stats, "w") as file:
            json.dump(dict(server.counts), file)  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(main())
