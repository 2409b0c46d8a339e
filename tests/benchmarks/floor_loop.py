"""The floor's third shape: N connections driven by one thread from a selector (`python -m tests.benchmarks.floor`).

The uploader's sink runs its N sessions as N threads in one process, and each of their system
calls gives the GIL up and takes it back against the others. This client does the `guarded`
work of `tests.benchmarks.floor` per file (SIZE + STOR of `.name.part` with the bytes right
behind, the local size checked again, RNFR + RNTO + SIZE with the next EPSV, the size compared,
the local file deleted) for N connections from one thread that only waits in `select`: what a
sink built as one event loop could reach, with no hand-off between threads at all.

`journal=True` adds what the uploader also promises per file since issue 14: the file's SHA-256,
and its line in the day's manifest journal on the disk (fsync'ed) before the local delete; the
files verified in one turn of the loop share one fsync (the uploader's journal is a group commit
too).
"""

from __future__ import annotations

import hashlib
import os
import selectors
import socket
from collections import deque
from pathlib import Path

from tests.benchmarks.servers import Server


class _Session:
    """One control connection's state: its files, its reply buffer, the replies it waits for."""

    def __init__(self, server: Server, files: list[Path], remote: str) -> None:
        from tests.benchmarks.floor import Control

        self.control = Control(server)  # logged in, blocking; non-blocking from here on
        self.sock = self.control.sock
        self.files = deque(files)
        self.remote = remote
        self.buffer = b""
        self.expected: list[bytes] = []
        self.replies: list[bytes] = []
        self.step = ""
        self.current: tuple[Path, int, str, str, bytes] | None = None
        self.epsv = b""
        self.line = b""  # the current file's manifest line (journal=True)

    def lines(self, data: bytes) -> list[bytes]:
        """Complete replies from `data` (a multi-line reply counts once, by its last line)."""
        self.buffer += data
        out = []
        while (end := self.buffer.find(b"\r\n")) >= 0:
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            if line[3:4] == b" ":
                out.append(line)
        return out


def open_sessions(server: Server, shares: list[list[Path]], remote: str) -> list[_Session]:
    """One logged-in connection per share (before the clock starts, as for the other clients)."""
    return [_Session(server, share, remote) for share in shares]


def run_loop(sessions: list[_Session], journal: Path | None) -> None:
    """Deliver every session's files, all from this one thread; `journal`: hash, journal and fsync too."""
    selector = selectors.DefaultSelector()
    journal_fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if journal is not None else None
    active = 0
    for session in sessions:
        session.sock.setblocking(False)
        selector.register(session.sock, selectors.EVENT_READ, session)
        if session.files:
            _send(session, b"EPSV\r\n", [b"229"], "epsv")
            active += 1
    verified: list[tuple[_Session, Path]] = []
    while active:
        for key, _ in selector.select():
            session = key.data
            data = session.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a control connection")
            for line in session.lines(data):
                session.replies.append(line)
                if len(session.replies) == len(session.expected):
                    active -= _advance(session, verified, hashing=journal is not None)
        if verified:  # this turn's verified files: their journal lines under one fsync, then their deletes
            if journal_fd is not None:
                os.write(journal_fd, b"".join(session.line for session, _ in verified))
                os.fsync(journal_fd)
            for session, path in verified:
                os.remove(path)
                if session.files:
                    _store(session, hashing=journal is not None)
            verified.clear()
    if journal_fd is not None:
        os.close(journal_fd)
    selector.close()
    for session in sessions:
        session.sock.setblocking(True)
        session.control.close()


def _send(session: _Session, data: bytes, expect: list[bytes], step: str) -> None:
    session.sock.setblocking(True)
    session.sock.sendall(data)
    session.sock.setblocking(False)
    session.expected, session.replies, session.step = expect, [], step


def _check(session: _Session) -> None:
    for code, line in zip(session.expected, session.replies, strict=True):
        if not line.startswith(code):
            raise RuntimeError(f"{session.step}: expected {code!r}, got {line!r}")


def _advance(session: _Session, verified: list[tuple[_Session, Path]], *, hashing: bool) -> int:
    """The replies `session` waited for are in: its next step. Returns 1 when the session has finished."""
    _check(session)
    if session.step == "epsv":
        session.epsv = session.replies[0]
        _store(session, hashing=hashing)
        return 0
    if session.step == "store":
        path, size, final, part, _ = session.current
        if os.stat(path).st_size != size:
            raise RuntimeError(f"{path} changed while it was sent")
        more = [b"EPSV\r\n"] if len(session.files) else []
        flight = b"".join([f"RNFR {part}\r\nRNTO {final}\r\nSIZE {final}\r\n".encode(), *more])
        _send(session, flight, [b"350", b"250", b"213", *([b"229"] if more else [])], "rename")
        return 0
    if session.step == "rename":
        path, size, final, _, _ = session.current
        if int(session.replies[2][4:]) != size:
            raise RuntimeError(f"{final}: the server has {session.replies[2]!r}, local {size} bytes")
        if len(session.replies) > 3:
            session.epsv = session.replies[3]
        verified.append((session, path))
        session.step = "verified"
        return 0 if session.files else 1
    raise RuntimeError(f"unexpected step {session.step}")


def _store(session: _Session, *, hashing: bool) -> None:
    """Open the next file, SIZE + STOR in one flight on the port asked ahead, the bytes right behind."""
    path = session.files.popleft()
    with open(path, "rb", buffering=0) as local:
        size = os.fstat(local.fileno()).st_size
        data = local.read()
    if hashing:
        session.line = f"{hashlib.sha256(data).hexdigest()}  {path.name}\n".encode()
    final, part = f"{session.remote}/{path.name}", f"{session.remote}/.{path.name}.part"
    session.current = (path, size, final, part, data)
    port = int(session.epsv.split(b"|")[-2])
    data_sock = socket.create_connection(("127.0.0.1", port))
    _send(session, f"SIZE {final}\r\nSTOR {part}\r\n".encode(), [b"550", b"150", b"226"], "store")
    data_sock.sendall(data)
    data_sock.close()
