"""A loopback server that watches what it makes visible and can stop dead at a chosen point.

`Watch` records every rename onto a final name with the bytes the name showed at that instant,
every store straight onto a final name, and the time of every connection and login. A `Tripwire`
stops the server's one thread when a transfer reaches a point (a command about to run, or so many
bytes received for a matching file), so the test can SIGKILL the client exactly there; once
released, the server drops the connection without running the command, as if the client's last
words were lost with it. The fault knobs of `tests.ftp_faults.Faults` work alongside.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler

from tests.ftp_faults import CuttingDTPHandler, _FaultMixin

#: Longest a tripwire holds the server when the test never releases it (a failed test).
HOLD_LIMIT_SECONDS = 30.0


#: the per-day manifest and its temporary name: not station files, left out of the watch
MANIFEST_FILES = frozenset({"SHA256SUMS", ".SHA256SUMS.part"})


@dataclass
class Tripwire:
    """Stop at `point` ("DATA", or a command name such as "RNFR") for a path containing `match`."""

    point: str
    match: str = ""
    min_bytes: int = 0
    hit: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    path: str = ""

    def fire(self, path: str) -> None:
        self.path = path
        self.hit.set()
        self.release.wait(HOLD_LIMIT_SECONDS)


@dataclass
class Watch:
    """What one server saw; filled in the server's thread, read by the test under `lock`."""

    root: Path = Path()
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: (path under the server root, sha256) of each file the moment a rename made it visible.
    renames: list[tuple[str, str]] = field(default_factory=list)
    #: STOR/APPE targets that were not temporary names: a final name written in place.
    final_stores: list[str] = field(default_factory=list)
    #: every STOR/APPE target, under the server root, with the time it came.
    stores: list[tuple[float, str]] = field(default_factory=list)
    connections: list[float] = field(default_factory=list)
    logins: list[float] = field(default_factory=list)
    tripwires: list[Tripwire] = field(default_factory=list)
    #: stop reading a transfer for `stall_seconds` once `stall_after_bytes` arrived, this many times;
    #: or, with `stall_until` given, until the test sets it.
    stall_after_bytes: int = 0
    stall_seconds: float = 0.0
    stalls: int = 0
    stall_until: threading.Event | None = None

    def hold_transfers(self, after_bytes: int = 1_000_000) -> threading.Event:
        """Stop the next transfer once `after_bytes` arrived, until the returned event is set."""
        self.stall_after_bytes, self.stalls, self.stall_until = after_bytes, 1, threading.Event()
        return self.stall_until

    def arm(self, point: str, match: str = "", min_bytes: int = 0) -> Tripwire:
        wire = Tripwire(point, match, min_bytes)
        with self.lock:
            self.tripwires.append(wire)
        return wire

    def take(self, point: str, path: str, received: int = 0) -> Tripwire | None:
        """The armed tripwire this point trips (disarmed as it fires), if any."""
        with self.lock:
            for wire in self.tripwires:
                if wire.point == point and wire.match in path and received >= wire.min_bytes:
                    self.tripwires.remove(wire)
                    return wire
        return None

    def relative(self, path: str) -> str:
        return str(Path(path).relative_to(self.root))

    def stored(self, name: str) -> list[float]:
        """When a STOR/APPE for a path containing `name` arrived."""
        with self.lock:
            return [at for at, path in self.stores if name in path]


class _Watched:
    """Sits between the fault mixin and pyftpdlib: sees each command as it is about to run."""

    watch: Watch = Watch()

    def handle(self) -> None:
        with self.watch.lock:
            self.watch.connections.append(time.monotonic())
        super().handle()  # type: ignore[misc]

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        wire = self.watch.take(cmd, arg)
        if wire is not None:
            wire.fire(arg)
            self.close()  # the command never runs: its client is gone
            return
        if cmd == "PASS":
            with self.watch.lock:
                self.watch.logins.append(time.monotonic())
        super().pre_process_command(line, cmd, arg)  # type: ignore[misc]

    def ftp_STOR(self, file: str, mode: str = "w") -> object:
        if os.path.basename(file) in MANIFEST_FILES:  # the day's manifest: test_integrity.py watches it
            return super().ftp_STOR(file, mode)  # type: ignore[misc]
        with self.watch.lock:
            self.watch.stores.append((time.monotonic(), self.watch.relative(file)))
            if not os.path.basename(file).startswith("."):
                self.watch.final_stores.append(self.watch.relative(file))
        return super().ftp_STOR(file, mode)  # type: ignore[misc]

    def ftp_RNTO(self, path: str) -> object:
        result = super().ftp_RNTO(path)  # type: ignore[misc]
        if result and os.path.basename(path) not in MANIFEST_FILES:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            with self.watch.lock:
                self.watch.renames.append((self.watch.relative(path), digest))
        return result


class TrippingDTPHandler(CuttingDTPHandler):
    """The data channel: trips a "DATA" wire once enough bytes of a matching file arrived."""

    def handle_read(self) -> None:
        super().handle_read()
        if self._closed or self.file_obj is None:
            return
        watch: Watch = self.cmd_channel.watch
        wire = watch.take("DATA", self.file_obj.name, self.tot_bytes_received)
        if wire is not None:
            wire.fire(self.file_obj.name)
            self.cmd_channel.close()
        elif watch.stalls > 0 and self.tot_bytes_received >= watch.stall_after_bytes:
            watch.stalls -= 1
            self._stall(watch.stall_seconds, watch.stall_until)

    def _stall(self, seconds: float, until: threading.Event | None) -> None:
        """Stop reading (the client's send blocks once the socket buffers fill), as a hung server does."""

        def resume() -> None:
            if self._closed:
                return
            if until is not None and not until.is_set():
                self.ioloop.call_later(0.02, resume, _errback=self.handle_error)
                return
            self.add_channel(events=self.ioloop.READ)

        self.del_channel()
        self.ioloop.call_later(0 if until is not None else seconds, resume, _errback=self.handle_error)

    handle_read_event = handle_read


class WatchedHandler(_FaultMixin, _Watched, FTPHandler):
    dtp_handler = TrippingDTPHandler


class WatchedTLSHandler(_FaultMixin, _Watched, TLS_FTPHandler):
    """FTPS with the watch and the command faults (no data-channel tripwires)."""


class _Listener:
    """A loopback port served by a thread that hands each accepted connection to `accepted`."""

    def __init__(self, port: int, name: str) -> None:
        self._socket = socket.socket()
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", port))
        self._socket.listen(64)
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def accepted(self, connection: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._socket.close()


class DeadPort(_Listener):
    """A port where the FTP server used to be: accepts and hangs up at once, counting the attempts.

    (With nothing listening, connection attempts could not be counted.)
    """

    def __init__(self, port: int) -> None:
        self.attempts: list[float] = []
        super().__init__(port, "dead-port")

    def accepted(self, connection: socket.socket) -> None:
        self.attempts.append(time.monotonic())
        connection.close()


class SilentPort(_Listener):
    """A server that accepts and never says a word (hung before its greeting, or behind a stalled link).

    The connections are held open until `close`, so a client waits for the greeting until its timeout.
    """

    def __init__(self) -> None:
        self.connections: list[socket.socket] = []
        super().__init__(0, "silent-port")

    def accepted(self, connection: socket.socket) -> None:
        self.connections.append(connection)

    def close(self) -> None:
        super().close()
        for connection in self.connections:
            connection.close()
