"""Store: one STOR (or REST + STOR, or APPE) of a local file, and the sender that pushes its bytes.

- Resume: STOR from `offset` with REST; APPE when REST is refused as unknown. A server that refuses
  the resumed STOR itself (ProFTPD's default answers "451 Append/Restart not permitted") gets the
  whole file at once; once that is accepted, `ServerFeatures.resume_refused` stops further resumes.
- The overwrite guard (`Guard`) is asked the final name's size in the STOR's own flight when
  pipelining (else just before): a file it may not replace ends the transfer before a byte is
  sent (a small file sent before the 150 has gone into the temporary file by then), and the
  temporary file is removed. A server without SIZE/MLST after all leaves the
  guard for after the transfer (`late_guard`), never a question in the middle of it.
- `progress.stored` turns True as soon as the server accepted the transfer: from then on the
  temporary name holds this attempt's bytes; `progress.complete` when all of them were sent.
- Plain FTP sends with `socket.sendfile` (zero-copy); TLS, and plain FTP with sendfile off (or a
  bandwidth limit's smaller chunks), send blocks of `blocksize`. A backlog transfer's data
  connection keeps few unsent bytes in the kernel, and its blocks go in the pieces the kernel takes
  with the live-first pause between them (the throttle's `prepare` and `sendall`; with sendfile the
  pause acts between blocks).
- A small file (at most `EARLY_SEND_MAX` bytes, whole, plain FTP, pipelining) is sent without
  waiting for the 150: STOR goes out, the data connection opens on the port asked ahead, the bytes
  and the end of the data follow at once, then the replies are read (the guard's, 150, 226). That
  is one round trip per file less; see `pipeline.ftp.early` for what a refusal does then.
"""

from __future__ import annotations

import contextlib
import ftplib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from pipeline.ftp import early
from pipeline.ftp.connection import Connection
from pipeline.ftp.errors import ConnectionLost, FtpFailure, LocalFileChanged, TargetExists
from pipeline.ftp.hashing import send_hashed
from pipeline.ftp.replies import is_unsupported
from pipeline.ftp.sizes import RemoteSizes
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import DeliveryProgress

log = logging.getLogger("beemon.sink.session")

#: What a refused resumed STOR raises: the caller sends the whole file instead.
_REFUSALS = (ftplib.error_temp, ftplib.error_perm)


@dataclass(frozen=True, slots=True)
class Guard:
    """The caller's rule for an existing file at the final name (`Delivery.may_replace`)."""

    target: str
    local_path: str
    size: int
    may_replace: Callable[[int], bool]

    def check(self, existing: int | None) -> None:
        if existing is not None and not self.may_replace(existing):
            raise TargetExists(
                f"refusing to overwrite {self.target} ({existing} B)"
                f" with a different file {self.local_path} ({self.size} B)"
            )


@dataclass(slots=True)
class DataSender:
    """Pushes a file's bytes into a data connection, at most `blocksize` (or the throttle's chunk) at a time."""

    blocksize: int
    throttle: TokenBucket | None = None
    use_sendfile: bool = True
    aborted: threading.Event = field(default_factory=threading.Event)
    #: hash what is sent (`upload.checksum = "sha256"`): buffered blocks, the digest in `sent_sha256`
    checksum: bool = False
    #: the SHA-256 (hex) of the file's first `offset + count` bytes after a hashed `send`, else None
    sent_sha256: str | None = None

    def send(
        self, conn: socket.socket, local: BinaryIO, offset: int, count: int, started: Callable[[], None] | None = None
    ) -> int:
        """Send `count` bytes of `local` from `offset`: sendfile on plain sockets, blocks otherwise;
        with `checksum`, always blocks, hashed as they go (one read of the file: see docs/benchmarks.md).
        `started` is called once the first block is in the kernel (the caller's work overlaps the rest)."""
        chunk = self.blocksize if self.throttle is None else min(self.blocksize, self.throttle.chunk_size)
        if self.checksum:
            sent, self.sent_sha256 = send_hashed(
                conn, local, offset, count, chunk, throttle=self.throttle, aborted=self.aborted, started=started
            )
            return sent
        zero_copy = self.use_sendfile and not isinstance(conn, ssl.SSLSocket)
        buffer = None if zero_copy else memoryview(bytearray(min(chunk, max(count, 1))))
        local.seek(offset)
        sent = 0
        while sent < count:
            want = min(chunk, count - sent)
            if self.throttle is not None:
                self.throttle.acquire(want, wait=self.aborted.wait)
            if self.aborted.is_set():
                raise ConnectionLost("transfer aborted at the stop deadline")
            if buffer is None:
                got = conn.sendfile(local, offset + sent, want)
            else:
                got = local.readinto(buffer[:want])
                if got:
                    self._sendall(conn, buffer[:got])
            sent += got
            if got < want:
                raise LocalFileChanged(f"{local.name} shrank to {offset + sent} bytes while it was sent")
            if started is not None:
                started, begun = None, started
                begun()
        return sent

    def prepare(self, conn: socket.socket) -> None:
        """A data connection opened for a transfer: the throttle's rule for its socket (a backlog one keeps
        few unsent bytes in the kernel, `pipeline.transport.unsent`)."""
        if self.throttle is not None:
            self.throttle.prepare(conn)

    def _sendall(self, conn: socket.socket, data: memoryview) -> None:
        if self.throttle is None:
            conn.sendall(data)
        else:
            self.throttle.sendall(conn, data, self.aborted.wait)


class _ResumeRefused(Exception):
    """The server refused the resumed STOR (or APPE): `args[0]` is its reply."""


class Store:
    """The transfers of one delivery into its temporary (or final) name (see the module docstring)."""

    def __init__(
        self, connection: Connection, sizes: RemoteSizes, sender: DataSender, progress: DeliveryProgress
    ) -> None:
        self.connection = connection
        self.features = connection.features
        self.sizes = sizes
        self.sender = sender
        self.progress = progress
        #: a guard the STOR's flight could not decide: the caller asks it once the transfer is over
        self.late_guard: Guard | None = None
        #: the caller's work to do while the server's replies travel (`Delivery.meanwhile`)
        self.meanwhile: Callable[[], None] | None = None

    def waiting(self) -> None:
        """The bytes are on their way (the first block of a longer file: its bookkeeping must not wait for a
        whole long transfer): the caller's `meanwhile` runs now (once), while the rest travels."""
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()

    def transfer(
        self, local: BinaryIO, path: str, offset: int, size: int, guard: Guard | None = None
    ) -> tuple[int, int, str]:
        """Send `local[offset:size]` into `path`; returns (offset, bytes sent, the 226 reply).

        A refused resume falls back to a STOR of the whole file (offset 0).
        """
        if early.fits(self.connection.require(), offset, size):
            return early.store(self, local, path, size, guard)
        try:
            data, command, probe, probed = self._open(path, offset, guard)
        except _ResumeRefused as refused:
            return self._whole(local, path, size, str(refused))
        self.connection.require().data_socket = data
        self.sender.prepare(data)
        self.progress.stored = True  # the server opened `path` for this transfer: its bytes are ours
        if guard is not None and probe is not None:
            self.check_guard(data, path, guard, probe, probed)
        sent = self._send(data, local, offset, size - offset, command)
        self.waiting()
        with self.connection.mapped(command):
            reply = self.connection.require().voidresp()
        self.progress.complete = offset + sent == size
        return offset, sent, reply

    def _open(self, path: str, offset: int, guard: Guard | None) -> tuple[socket.socket, str, str | None, str]:
        """Open the transfer: STOR (REST first from `offset`), APPE when REST is unknown here.

        Returns the data connection, the command, and the size probe sent in its flight with its reply.
        """
        keep = _REFUSALS if offset else ()
        try:
            with self.connection.mapped(f"STOR {path}", keep=keep):
                try:
                    return self._open_stor(path, offset or None, guard)
                except ftplib.error_perm as error:
                    if not offset or not is_unsupported(error):
                        raise
            with self.connection.mapped(f"APPE {path}", keep=keep):  # REST refused: append to the partial file
                data, _ = self.connection.require().ntransfercmd(f"APPE {path}")
                return data, f"APPE {path}", None, ""
        except _REFUSALS as error:  # only with an offset: `keep`
            raise _ResumeRefused(str(error).strip()) from None

    def _open_stor(
        self, path: str, rest: int | None, guard: Guard | None
    ) -> tuple[socket.socket, str, str | None, str]:
        """STOR, with the guard's size probe in its flight when that can be; else the guard asked just before."""
        client = self.connection.require()
        command = f"STOR {path}"
        probe = self.features.probe_command if guard is not None else None
        if guard is not None and probe is not None and client.can_overlap(rest):
            data, (probed,) = client.transfer_after([f"{probe} {guard.target}"], command)
            return data, command, probe, probed
        if guard is not None:
            guard.check(self.sizes.size(guard.target))
        data, _ = client.ntransfercmd(command, rest)
        return data, command, None, ""

    def check_guard(self, data: socket.socket, path: str, guard: Guard, probe: str, probed: str) -> None:
        """Decide the guard from the probe's reply; without SIZE/MLST after all, after the transfer instead."""
        if is_unsupported(probed):
            self.features.probe_unsupported(probe, probed)
            self.late_guard = guard
            return
        try:
            guard.check(self.sizes.probed(guard.target, probe, probed))
        except (TargetExists, FtpFailure):  # a copy to protect, or a server that cannot say now
            self._abandon(data, path)
            raise

    def _send(self, data: socket.socket, local: BinaryIO, offset: int, count: int, command: str) -> int:
        """Send the bytes; any failure but the local file's own loses the connection (it is cut midway)."""
        client = self.connection.require()
        try:
            with self.connection.mapped(command, lost=True), data:
                sent = self.sender.send(data, local, offset, count, started=self.waiting)
                if isinstance(data, ssl.SSLSocket):
                    data.unwrap()
        except LocalFileChanged:
            client.data_socket = None
            self.connection.drain_reply()
            raise
        finally:
            client.data_socket = None
        return sent

    def _whole(self, local: BinaryIO, path: str, size: int, refusal: str) -> tuple[int, int, str]:
        """The resumed STOR (or APPE) was refused: send the whole file; once that is accepted, resume no more."""
        log.debug("resuming %s was refused (%s): sending the whole file", path, refusal)
        result = self.transfer(local, path, 0, size)
        self.features.resume_refused(refusal)
        return result

    def _abandon(self, data: socket.socket, path: str) -> None:
        """End a transfer that must not send anything: close its data connection, read the reply, remove `path`."""
        self.connection.require().data_socket = None
        with contextlib.suppress(OSError):
            data.close()
        self.connection.drain_reply()
        with contextlib.suppress(FtpFailure):  # an empty `.part` left behind harms nothing
            self.connection.command(f"DELE {path}")
