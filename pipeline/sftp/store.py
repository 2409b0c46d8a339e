"""The steps of one SFTP delivery: folders, sizes, the windowed store, rename, verify (cf. `pipeline.ftp.store`).

- store: the file goes to `.<name>.part` beside the final name, in `blocksize` write requests with
  at most `requests` in flight, as a strict window: every byte more than a window below the last
  request sent has been acknowledged. A resume (`Delivery.resume`: the `.part` holds the start of
  this very version) continues from the `.part`'s size less one window (`resume_offset`), so a
  server that applied writes out of order leaves no hole behind. Then `fsync@openssh.com` where
  offered. The connection's socket is set for each store as the throttle says (a backlog transfer
  keeps few unsent bytes in the kernel: `pipeline.transport.unsent`); its pause between blocks
  holds the event loop, so what asyncssh has buffered waits too.
- rename: `posix-rename@openssh.com` replaces the final name atomically; where the server lacks it,
  a plain rename, and when that is refused because the final name exists, the overwrite guard
  decides (as for FTP), the old file is removed and the rename done again.
- verify: `stat` of the final name against the local size. OpenSSH has no hash extension, so the
  size is the check here (the SHA-256 of each file is for the manifest of the integrity work).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import BinaryIO, Protocol

import asyncssh

from pipeline.sftp.channel import Channel
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivery, DeliveryProgress
from pipeline.transport.errors import (
    ConnectionLost,
    LocalFileChanged,
    PermanentFailure,
    TargetExists,
    TransientFailure,
)

log = logging.getLogger("beemon.sink.sftp")


class Digest(Protocol):
    """A running hash (hashlib's): fed the bytes as they are sent."""

    def update(self, data: bytes, /) -> None: ...


def guard(delivery: Delivery, target: str, existing: int | None) -> None:
    """The overwrite guard: a file at the final name that may not be replaced ends the delivery."""
    if existing is not None and delivery.may_replace is not None and not delivery.may_replace(existing):
        raise TargetExists(
            f"refusing to overwrite {target} ({existing} B)"
            f" with a different file {delivery.local_path} ({delivery.size} B)"
        )


class SftpStore:
    """What a delivery asks of the server, over one channel; learns the server's extensions by trying."""

    def __init__(self, channel: Channel, throttle: TokenBucket | None) -> None:
        self.channel = channel
        self.params = channel.params
        self._throttle = throttle
        self._dirs: set[str] = set()
        #: the server's extensions, learned by trying: an unsupported one is not asked for again
        self.posix_rename = True
        self.fsync = True

    def forget_folders(self) -> None:
        """A new session: the folders it made are asked again."""
        self._dirs.clear()

    # --- sizes and folders

    def size(self, path: str) -> int | None:
        """The size of `path` on the server, None when there is no such file."""

        async def stat() -> int | None:
            try:
                attrs = await self.channel.client().stat(path)
            except asyncssh.SFTPNoSuchFile:
                return None
            return attrs.size

        return self.channel.run(stat, "STAT")

    def makedirs(self, folder: str) -> bool:
        """Create `folder` and its parents once per session; True when this call created the last one."""
        if folder in self._dirs:
            return False

        async def make() -> bool:
            client = self.channel.client()
            if await client.isdir(folder):
                return False
            await client.makedirs(folder, exist_ok=True)
            return True

        created = self.channel.run(make, "MKDIR")
        self._dirs.add(folder)
        return created

    def resume_offset(self, part: int | None, size: int) -> int:
        """Where a resume starts: one window below the `.part`'s end (0 when there is nothing to resume)."""
        if part is not None and 0 < part < size:
            return max(0, part - self.params.blocksize * self.params.requests)
        return 0

    # --- store

    def store(
        self, local: BinaryIO, path: str, offset: int, size: int, progress: DeliveryProgress, digest: Digest | None
    ) -> int:
        """Write `local[offset:size]` to `path` (created or truncated unless resuming), feeding the bytes sent
        to `digest`; returns the bytes sent."""
        return self.channel.run(lambda: self._write(local, path, offset, size, progress, digest), "WRITE", timeout=None)

    async def _write(
        self, local: BinaryIO, path: str, offset: int, size: int, progress: DeliveryProgress, digest: Digest | None
    ) -> int:
        timeout = self.params.timeout
        sock = self.channel.socket()
        if self._throttle is not None and sock is not None:
            self._throttle.prepare(sock)  # a backlog transfer keeps few unsent bytes in the kernel, a live one any
        handle = await asyncio.wait_for(self.channel.client().open(path, "r+b" if offset else "wb"), timeout)
        progress.stored = True  # the server opened `path` for this transfer: its bytes are ours
        window: collections.deque[asyncio.Future[int]] = collections.deque()
        try:
            position = await self._send_blocks(local, handle, offset, size, window, digest)
            while window:
                await asyncio.wait_for(window.popleft(), timeout)
            await self.sync(handle)
        finally:
            for pending in window:
                pending.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.close(), timeout)
        progress.complete = True
        return position - offset

    async def _send_blocks(
        self,
        local: BinaryIO,
        handle: asyncssh.SFTPClientFile,
        offset: int,
        size: int,
        window: collections.deque[asyncio.Future[int]],
        digest: Digest | None,
    ) -> int:
        """Queue the write requests, at most `requests` unacknowledged; returns the end position."""
        position = offset
        local.seek(offset)
        while position < size:
            want = min(self.params.blocksize, size - position)
            if self._throttle is not None:
                self._throttle.acquire(want, wait=self.channel.aborted.wait)
            if self.channel.aborted.is_set():
                raise ConnectionLost("transfer aborted at the stop deadline")
            data = local.read(want)
            if len(data) < want:
                raise LocalFileChanged(f"{local.name} shrank to {position + len(data)} bytes while it was sent")
            if digest is not None:
                digest.update(data)
            window.append(asyncio.ensure_future(handle.write(data, position)))
            position += want
            if len(window) >= self.params.requests:  # strict window: the oldest request must be acknowledged
                await asyncio.wait_for(window.popleft(), self.params.timeout)
        return position

    async def sync(self, handle: asyncssh.SFTPClientFile) -> None:
        """fsync@openssh.com where the server offers it (learned by trying)."""
        if not self.fsync:
            return
        try:
            await asyncio.wait_for(handle.fsync(), self.params.timeout)
        except asyncssh.SFTPOpUnsupported:
            self.fsync = False
            log.info("%s:%d offers no fsync@openssh.com: files are renamed unsynced", *self._where())

    def _where(self) -> tuple[str, int]:
        return self.params.host, self.params.port

    # --- rename

    def rename(self, staging: str, target: str, delivery: Delivery) -> str:
        """Move `staging` onto `target`: posix-rename where offered, else rename (replacing as the guard allows)."""
        if self.posix_rename:
            try:
                if self.channel.run(lambda: self._posix_rename(staging, target), "RENAME"):
                    return "posix-rename done"
            except (PermanentFailure, TransientFailure) as failure:
                raise self._rename_refused(staging, failure) from None
            self.posix_rename = False
            log.info("%s:%d lacks posix-rename@openssh.com: renaming after a check of the final name", *self._where())
        try:
            self.channel.run(lambda: self.channel.client().rename(staging, target), "RENAME")
            return "rename done"
        except (PermanentFailure, TransientFailure) as failure:
            existing = self.size(target)
            if existing is None:
                raise self._rename_refused(staging, failure) from None
        guard(delivery, target, existing)
        self.channel.run(lambda: self.channel.client().remove(target), "REMOVE")
        log.debug("replaced %s: the server would not rename onto an existing file", target)
        try:
            self.channel.run(lambda: self.channel.client().rename(staging, target), "RENAME")
        except (PermanentFailure, TransientFailure) as failure:
            raise self._rename_refused(staging, failure) from None
        return "rename done (old file replaced)"

    async def _posix_rename(self, staging: str, target: str) -> bool:
        try:
            await self.channel.client().posix_rename(staging, target)
        except asyncssh.SFTPOpUnsupported:
            return False
        return True

    def _rename_refused(self, staging: str, failure: PermanentFailure | TransientFailure) -> Exception:
        if self.size(staging) is None:
            return TransientFailure(f"{staging} vanished on the server: {failure.reply}", command="RENAME")
        return PermanentFailure(f"rename refused: {failure.reply}", command="RENAME")

    # --- verify

    def verify(self, target: str, size: int) -> bool:
        remote = self.size(target)
        if remote is None:
            raise TransientFailure(f"{target} is not on the server after the upload", command="STAT")
        if remote != size:
            raise TransientFailure(f"size mismatch: the server has {remote} bytes, local {size}", command="STAT")
        return True
