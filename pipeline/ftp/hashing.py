"""SHA-256 on both ends of a delivery: computed from the bytes sent, and asked of the server.

Sending with a hash reads each block into user space, hashes it and sends that very buffer
(`send_hashed`): one read of the file, and the hash is of exactly the bytes that went out. The
alternative, `sendfile` for the data and a second read of the same block (from the page cache) for
the hash, costs more CPU per GB here; docs/benchmarks.md has the figures (`make bench`).

The server's side: `OPTS HASH SHA-256` once per session, then `HASH <path>` (reply "213 SHA-256
0-<size> <hex> <path>"), or `XSHA256 <path>` (reply "250 <HEX>"), whichever FEAT listed; asked
alone (`sha256`), or inside another flight of commands (`flight`, then `answer` with its replies:
the rename's, so that the check costs no round trip).
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from collections.abc import Callable
from typing import BinaryIO, Protocol

from pipeline.ftp.errors import ConnectionLost, FtpFailure, LocalFileChanged, PermanentFailure
from pipeline.ftp.replies import reply_error
from pipeline.transport.bandwidth import TokenBucket

#: Blocks read to hash a file that was not sent now (a complete `.part` renamed, a manifest check).
READ_BLOCK = 1 << 20
_HEX64 = re.compile(r"\b([0-9a-fA-F]{64})\b")


class Commands(Protocol):
    """What asking the server needs: one command, its reply (failures raised as `FtpFailure`s), and
    the failure kind of a refusal read in a flight."""

    def command(self, line: str) -> str: ...

    def classify(self, error: BaseException, command: str) -> FtpFailure: ...


def file_sha256(local: BinaryIO, end: int | None = None) -> hashlib._Hash:
    """A running SHA-256 of `local[0:end]` (the whole file when `end` is None), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    local.seek(0)
    left = end
    while left is None or left > 0:
        block = local.read(READ_BLOCK if left is None else min(READ_BLOCK, left))
        if not block:
            break
        digest.update(block)
        if left is not None:
            left -= len(block)
    return digest


def send_hashed(
    conn: socket.socket,
    local: BinaryIO,
    offset: int,
    count: int,
    chunk: int,
    *,
    throttle: TokenBucket | None,
    aborted: threading.Event,
    started: Callable[[], None] | None = None,
) -> tuple[int, str]:
    """Send `count` bytes of `local` from `offset` in blocks of `chunk`, hashing what is sent; returns
    (bytes sent, SHA-256 hex of `local[0:offset + count]`). A resumed send hashes the prefix first."""
    digest = file_sha256(local, offset) if offset else hashlib.sha256()
    buffer = memoryview(bytearray(min(chunk, max(count, 1))))
    local.seek(offset)
    sent = 0
    while sent < count:
        want = min(chunk, count - sent)
        if throttle is not None:
            throttle.acquire(want, wait=aborted.wait)
        if aborted.is_set():
            raise ConnectionLost("transfer aborted at the stop deadline")
        got = local.readinto(buffer[:want])
        if got:
            if throttle is None:
                conn.sendall(buffer[:got])
            else:
                throttle.sendall(conn, buffer[:got], aborted.wait)
            digest.update(buffer[:got])
        sent += got
        if got < want:
            raise LocalFileChanged(f"{local.name} shrank to {offset + sent} bytes while it was sent")
        if started is not None:  # the first block is in the kernel (`DataSender.send`)
            started, begun = None, started
            begun()
    return sent, digest.hexdigest()


def send_then_read(conn: socket.socket, local: BinaryIO, offset: int, count: int, chunk: int) -> tuple[int, str]:
    """The measured alternative (see the module docstring): `sendfile` each block, then read it again to hash."""
    digest = file_sha256(local, offset) if offset else hashlib.sha256()
    buffer = memoryview(bytearray(min(chunk, max(count, 1))))
    sent = 0
    while sent < count:
        want = min(chunk, count - sent)
        got = conn.sendfile(local, offset + sent, want)
        local.seek(offset + sent)
        read = local.readinto(buffer[:got])
        digest.update(buffer[:read])
        sent += got
        if got < want:
            raise LocalFileChanged(f"{local.name} shrank to {offset + sent} bytes while it was sent")
    return sent, digest.hexdigest()


class RemoteHasher:
    """Asks one session's server for SHA-256s with the command its FEAT listed (`Feat.sha256_command`)."""

    def __init__(self, session: Commands, command: str) -> None:
        self._session = session
        self._command = command
        self._selected = False

    def sha256(self, path: str) -> str | None:
        """The server's SHA-256 of `path` (lower-case hex), None when the file is not there (550)."""
        if self._command == "HASH" and not self._selected:
            self._session.command("OPTS HASH SHA-256")
            self._selected = True
        try:
            reply = self._session.command(f"{self._command} {path}")
        except PermanentFailure:
            return None
        return parse_hash_reply(reply)

    def flight(self, path: str) -> list[str]:
        """The commands that ask `path`'s hash inside another flight (`OPTS HASH SHA-256` first, once)."""
        select = ["OPTS HASH SHA-256"] if self._command == "HASH" and not self._selected else []
        return [*select, f"{self._command} {path}"]

    def answer(self, replies: list[str]) -> str | None:
        """What `sha256` would return, from the replies to `flight`'s commands; a refusal raised as `sha256` would."""
        *select, reply = replies
        if select:
            if not select[0].startswith("2"):
                raise self._session.classify(reply_error(select[0]), "OPTS")
            self._selected = True
        if reply.startswith("2"):
            return parse_hash_reply(reply)
        failure = self._session.classify(reply_error(reply), self._command)
        if isinstance(failure, PermanentFailure):
            return None
        raise failure


def parse_hash_reply(reply: str) -> str | None:
    """The hex digest in a HASH (213) or XSHA256 (250) reply: the last 64-hex-digit word of its last line."""
    lines = reply.strip().splitlines()
    found = _HEX64.findall(lines[-1]) if lines else []
    return found[-1].lower() if found else None


def mismatch_line(target: str, local: str, remote: str) -> str:
    """The one WARNING line (and failure reply) of a copy the server hashes differently."""
    return f"hash mismatch for {target}: the server's copy has SHA-256 {remote}, the local file {local}"
