"""SFTP behind the transport seam: `SftpTransport`, one SSH connection with one SFTP channel, on asyncssh.

asyncssh moved files over loopback SFTP faster than paramiko and with less CPU per GB on this
machine (docs/benchmarks.md). It is asynchronous; the sink's workers are threads, so each transport
owns an event loop that runs only while its worker is inside a call (`abort`, from another thread,
hands `conn.abort` to that loop). One delivery, under section comments below:

- connect: the host key must be in known_hosts (else `SessionFailure` saying how to add it), then
  the password or key login, then the SFTP channel.
- store: the file goes to `.<name>.part` beside the final name, in `blocksize` write requests with
  at most `requests` in flight, as a strict window: every byte more than a window below the last
  request sent has been acknowledged. A resume (`Delivery.resume`: the `.part` holds the start of
  this very version) continues from the `.part`'s size less one window, so a server that applied
  writes out of order leaves no hole behind. Then `fsync@openssh.com` where offered.
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
import os
import posixpath
import threading
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, BinaryIO, TypeVar

import asyncssh

from pipeline.sftp.errors import classify, host_key_advice
from pipeline.sftp.params import SftpParams
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress
from pipeline.transport.errors import (
    ConnectionLost,
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TargetExists,
    TransientFailure,
)
from pipeline.transport.naming import temp_name

log = logging.getLogger("beemon.sink.sftp")
logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every channel at INFO
T = TypeVar("T")


@cache
def preferred_ciphers() -> list[str]:
    """AES-GCM first where the CPU has AES instructions (x86 with AES-NI, ARMv8 with its crypto extension),
    ChaCha20-Poly1305 first elsewhere (a Raspberry Pi 4 has no AES instructions: ChaCha20 is the faster there)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = set(info.read().replace(":", " ").split())
    except OSError:
        flags = set()
    gcm = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    chacha = ["chacha20-poly1305@openssh.com"]
    rest = ["aes128-ctr", "aes256-ctr"]
    return (gcm + chacha if "aes" in flags else chacha + gcm) + rest


class SftpTransport:
    """One SFTP session as a sink worker uses it (see the module docstring for the steps)."""

    def __init__(
        self, params: SftpParams, *, throttle: TokenBucket | None = None, aborted: threading.Event | None = None
    ) -> None:
        self.params = params
        self._throttle = throttle
        self._aborted = aborted or threading.Event()
        self._loop = asyncio.new_event_loop()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._dirs: set[str] = set()
        self._root = posixpath.normpath("/" + params.remote_root.strip("/")) if params.remote_root.strip("/") else "/"
        #: the server's extensions, learned by trying: an unsupported one is not asked for again
        self.posix_rename = True
        self.fsync = True
        self.welcome = ""

    def __repr__(self) -> str:
        p = self.params
        state = "connected" if self.connected else "closed"
        return f"SftpTransport({p.username}@{p.host}:{p.port}{self._root}, {state})"

    # --- running asyncssh's coroutines on this transport's loop

    def _run(self, make: Callable[[], Awaitable[T]], command: str, *, timeout: float | None = -1) -> T:
        """Run one coroutine to its end on the owner's thread; errors become the transports' failure kinds."""
        limit = self.params.timeout if timeout == -1 else timeout

        async def bounded() -> T:
            return await asyncio.wait_for(make(), limit) if limit else await make()

        try:
            return self._loop.run_until_complete(bounded())
        except (LocalFileChanged, LocalFileGone):
            raise
        except Exception as error:
            failure = classify(error, self.params, command=command)
            if not failure.session_usable:
                self._discard()
            raise failure from None

    def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            raise ConnectionLost("not connected", command="SFTP")
        return self._sftp

    # --- connection

    @property
    def connected(self) -> bool:
        return self._sftp is not None

    def connect(self) -> str:
        """Check the host key, log in, open the SFTP channel; returns the server's version string."""
        self.close()
        p = self.params
        if not os.path.isfile(p.known_hosts_file):
            raise SessionFailure(
                f"{p.host}:{p.port}: no known_hosts file {p.known_hosts_file} to check the host key against;"
                f" {host_key_advice(p)}",
                command="HOSTKEY",
            )
        keys: Any = [p.key_file] if p.key_file else (None if p.password else ())

        async def open_session() -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
            conn = await asyncssh.connect(
                p.host,
                p.port,
                username=p.username or None,
                password=p.password or None,
                client_keys=keys,
                known_hosts=p.known_hosts_file,
                encryption_algs=preferred_ciphers(),
                connect_timeout=p.timeout,
                keepalive_interval=0,
            )
            try:
                return conn, await conn.start_sftp_client()
            except BaseException:
                conn.abort()
                raise

        try:
            self._conn, self._sftp = self._run(open_session, "CONNECT", timeout=p.timeout * 2)
        except SessionFailure:
            raise
        except ConnectionLost as failure:
            if not failure.reply.startswith(f"{p.host}:"):
                failure.reply = f"{p.host}:{p.port}: {failure.reply}"
            raise
        self._dirs.clear()
        self.welcome = str(self._conn.get_extra_info("server_version") or "SSH")
        log.debug("session open: %r", self)
        return self.welcome

    def close(self) -> None:
        """Close the SFTP channel and the connection; never raises."""
        conn = self._conn
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.close()
            self._loop.run_until_complete(asyncio.wait_for(conn.wait_closed(), 2.0))
        self._discard()

    def _discard(self) -> None:
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.abort()

    def abort(self) -> None:
        """Cut the connection from another thread: the owner's call in progress fails at once."""
        self._aborted.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs on it
                self._loop.call_soon_threadsafe(conn.abort)

    def keep_alive(self) -> None:
        self._run(lambda: self._client().realpath("."), "KEEPALIVE")

    def idle(self) -> None:
        """Nothing is prepared ahead on SFTP."""

    # --- paths

    def absolute(self, remote_path: str) -> str:
        return posixpath.normpath(posixpath.join(self._root, remote_path))

    def _size(self, path: str) -> int | None:
        """The size of `path` on the server, None when there is no such file."""

        async def stat() -> int | None:
            try:
                attrs = await self._client().stat(path)
            except asyncssh.SFTPNoSuchFile:
                return None
            return attrs.size

        return self._run(stat, "STAT")

    def _makedirs(self, folder: str) -> bool:
        """Create `folder` and its parents once per session; True when this call created the last one."""
        if folder in self._dirs:
            return False

        async def make() -> bool:
            client = self._client()
            if await client.isdir(folder):
                return False
            await client.makedirs(folder, exist_ok=True)
            return True

        created = self._run(make, "MKDIR")
        self._dirs.add(folder)
        return created

    def target_in_folder(self, remote_path: str, name: str) -> str:
        path = self.absolute(remote_path)
        if self._run(lambda: self._client().isdir(path), "STAT"):
            return posixpath.join(remote_path, name)
        return remote_path

    def read(self, remote_path: str) -> bytes:
        """The whole content of one remote file (`demo` compares what arrived with what was written)."""
        path = self.absolute(remote_path)

        async def read() -> bytes:
            async with self._client().open(path, "rb") as handle:
                return bytes(await handle.read())

        return self._run(read, "READ", timeout=None)

    def remove(self, remote_path: str) -> None:
        """Remove one file (`check` cleans up its probe with it)."""
        path = self.absolute(remote_path)
        self._run(lambda: self._client().remove(path), "REMOVE")

    def remove_stale_temp(self, remote_path: str) -> None:
        staging = temp_name(self.absolute(remote_path))

        async def remove() -> None:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await self._client().remove(staging)

        self._run(remove, "REMOVE")

    # --- one delivery

    def deliver(self, delivery: Delivery, progress: DeliveryProgress) -> Delivered:
        started = time.monotonic()
        target = self.absolute(delivery.remote_path)
        atomic = delivery.atomic_rename
        staging = temp_name(target) if atomic else target
        try:
            local = open(delivery.local_path, "rb")  # noqa: SIM115 - closed below, after the transfer
        except FileNotFoundError:
            raise LocalFileGone(delivery.local_path) from None
        offset, sent = 0, 0
        with local:
            opened = os.fstat(local.fileno()).st_size
            fresh = self._makedirs(posixpath.dirname(target))
            if atomic and delivery.may_replace is not None and not fresh:
                self._guard(delivery, target, self._size(target))
            part = self._size(staging) if atomic and (delivery.resume or delivery.part_complete) else None
            if delivery.part_complete and part == delivery.size:
                log.debug("%s holds the whole file since an earlier attempt: renaming it", staging)
            else:
                if delivery.resume and part is not None and 0 < part < delivery.size:
                    offset = max(0, part - self.params.blocksize * self.params.requests)
                sent = self._store(local, staging, offset, delivery.size, progress)
            if atomic and (now := os.fstat(local.fileno()).st_size) != opened:
                raise LocalFileChanged(f"{delivery.local_path} is {now} bytes now, {opened} when its upload began")
        reply = f"stored {sent} B" + (f" from {offset}" if offset else "")
        if atomic:
            reply = self._rename(staging, target, delivery)
            progress.renamed = True
        verified = self._verify(target, delivery.size) if delivery.verify_size else None
        return Delivered(sent, offset, reply, verified, time.monotonic() - started)

    @staticmethod
    def _guard(delivery: Delivery, target: str, existing: int | None) -> None:
        """The overwrite guard: a file at the final name that may not be replaced ends the delivery."""
        if existing is not None and delivery.may_replace is not None and not delivery.may_replace(existing):
            raise TargetExists(
                f"refusing to overwrite {target} ({existing} B)"
                f" with a different file {delivery.local_path} ({delivery.size} B)"
            )

    # --- store

    def _store(self, local: BinaryIO, path: str, offset: int, size: int, progress: DeliveryProgress) -> int:
        """Write `local[offset:size]` to `path` (created or truncated unless resuming); returns the bytes sent."""
        return self._run(lambda: self._write(local, path, offset, size, progress), "WRITE", timeout=None)

    async def _write(self, local: BinaryIO, path: str, offset: int, size: int, progress: DeliveryProgress) -> int:
        client = self._client()
        timeout = self.params.timeout
        handle = await asyncio.wait_for(client.open(path, "r+b" if offset else "wb"), timeout)
        progress.stored = True  # the server opened `path` for this transfer: its bytes are ours
        window: collections.deque[asyncio.Future[int]] = collections.deque()
        position = offset
        try:
            local.seek(offset)
            while position < size:
                want = min(self.params.blocksize, size - position)
                if self._throttle is not None:
                    self._throttle.acquire(want, wait=self._aborted.wait)
                if self._aborted.is_set():
                    raise ConnectionLost("transfer aborted at the stop deadline")
                data = local.read(want)
                if len(data) < want:
                    raise LocalFileChanged(f"{local.name} shrank to {position + len(data)} bytes while it was sent")
                window.append(asyncio.ensure_future(handle.write(data, position)))
                position += want
                if len(window) >= self.params.requests:  # strict window: the oldest request must be acknowledged
                    await asyncio.wait_for(window.popleft(), timeout)
            while window:
                await asyncio.wait_for(window.popleft(), timeout)
            if self.fsync:
                try:
                    await asyncio.wait_for(handle.fsync(), timeout)
                except asyncssh.SFTPOpUnsupported:
                    self.fsync = False
                    log.info("%s:%d offers no fsync@openssh.com: files are renamed unsynced", *self._where())
        finally:
            for pending in window:
                pending.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.close(), timeout)
        progress.complete = True
        return position - offset

    def _where(self) -> tuple[str, int]:
        return self.params.host, self.params.port

    # --- rename

    def _rename(self, staging: str, target: str, delivery: Delivery) -> str:
        """Move `staging` onto `target`: posix-rename where offered, else rename (replacing as the guard allows)."""
        if self.posix_rename:

            async def posix_rename() -> bool:
                try:
                    await self._client().posix_rename(staging, target)
                except asyncssh.SFTPOpUnsupported:
                    return False
                return True

            try:
                if self._run(posix_rename, "RENAME"):
                    return "posix-rename done"
            except (PermanentFailure, TransientFailure) as failure:
                raise self._rename_refused(staging, failure) from None
            self.posix_rename = False
            log.info("%s:%d lacks posix-rename@openssh.com: renaming after a check of the final name", *self._where())
        try:
            self._run(lambda: self._client().rename(staging, target), "RENAME")
            return "rename done"
        except (PermanentFailure, TransientFailure) as failure:
            existing = self._size(target)
            if existing is None:
                raise self._rename_refused(staging, failure) from None
        self._guard(delivery, target, existing)
        self._run(lambda: self._client().remove(target), "REMOVE")
        log.debug("replaced %s: the server would not rename onto an existing file", target)
        try:
            self._run(lambda: self._client().rename(staging, target), "RENAME")
        except (PermanentFailure, TransientFailure) as failure:
            raise self._rename_refused(staging, failure) from None
        return "rename done (old file replaced)"

    def _rename_refused(self, staging: str, failure: PermanentFailure | TransientFailure) -> Exception:
        if self._size(staging) is None:
            return TransientFailure(f"{staging} vanished on the server: {failure.reply}", command="RENAME")
        return PermanentFailure(f"rename refused: {failure.reply}", command="RENAME")

    # --- verify

    def _verify(self, target: str, size: int) -> bool:
        remote = self._size(target)
        if remote is None:
            raise TransientFailure(f"{target} is not on the server after the upload", command="STAT")
        if remote != size:
            raise TransientFailure(f"size mismatch: the server has {remote} bytes, local {size}", command="STAT")
        return True
