"""SFTP behind the transport seam: `SftpTransport`, one SSH connection with one SFTP channel, on asyncssh.

asyncssh moved files over loopback SFTP faster than paramiko and with less CPU per GB on this
machine (docs/benchmarks.md). The transport is made of two parts:

- `pipeline.sftp.channel`: the connection (host key, login, SFTP channel) and the event loop that
  runs asyncssh for the worker's thread; asyncssh's errors become the failure kinds there.
- `pipeline.sftp.store`: the steps of a delivery (folders, sizes, the windowed store with its
  resume, rename, verify) and the server extensions learned by trying.

One delivery: prepare the target (its folders; the overwrite guard), choose the offset (resume, or
only rename a `.part` that is already whole), store, check that the local file did not change
meanwhile, rename onto the final name, verify its size.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import threading
import time
from typing import BinaryIO

import asyncssh

from pipeline.sftp import small_files
from pipeline.sftp.channel import Channel
from pipeline.sftp.params import SftpParams
from pipeline.sftp.store import Digest, SftpStore, guard
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress
from pipeline.transport.errors import LocalFileChanged, LocalFileGone
from pipeline.transport.naming import temp_name

log = logging.getLogger("beemon.sink.sftp")


class SftpTransport:
    """One SFTP session as a sink worker uses it (see the module docstring for the steps)."""

    def __init__(
        self,
        params: SftpParams,
        *,
        throttle: TokenBucket | None = None,
        aborted: threading.Event | None = None,
        checksum: bool = True,
        atomic_rename: bool = True,
    ) -> None:
        self.params = params
        #: hash each file as it is sent (its SHA-256 goes into the day's manifest)
        self.checksum = checksum
        #: `upload.atomic_rename`: off, the manifests too are stored under their own names (a server without renames)
        self.atomic_rename = atomic_rename
        self.channel = Channel(params, aborted or threading.Event())
        self.store = SftpStore(self.channel, throttle)
        self._root = posixpath.normpath("/" + params.remote_root.strip("/")) if params.remote_root.strip("/") else "/"

    def __repr__(self) -> str:
        p = self.params
        state = "connected" if self.connected else "closed"
        return f"SftpTransport({p.username}@{p.host}:{p.port}{self._root}, {state})"

    # --- connection

    @property
    def connected(self) -> bool:
        return self.channel.connected

    @property
    def welcome(self) -> str:
        return self.channel.welcome

    def connect(self) -> str:
        """Check the host key, log in, open the SFTP channel; returns the server's version string."""
        welcome = self.channel.connect()
        self.store.forget_folders()
        log.debug("session open: %r", self)
        return welcome

    def close(self, *, wait_reply: bool = True) -> None:
        """Close the SFTP channel and the connection; never raises."""
        self.channel.close()

    def abort(self) -> None:
        """Cut the connection from another thread: the owner's call in progress fails at once."""
        self.channel.abort()

    def keep_alive(self) -> None:
        self.channel.run(lambda: self.channel.client().realpath("."), "KEEPALIVE")

    def idle(self) -> None:
        """Nothing is prepared ahead on SFTP."""

    # --- paths

    def absolute(self, remote_path: str) -> str:
        return posixpath.normpath(posixpath.join(self._root, remote_path))

    def target_in_folder(self, remote_path: str, name: str) -> str:
        path = self.absolute(remote_path)
        if self.channel.run(lambda: self.channel.client().isdir(path), "STAT"):
            return posixpath.join(remote_path, name)
        return remote_path

    def read(self, remote_path: str) -> bytes:
        """The whole content of one remote file (`demo` compares what arrived with what was written)."""
        path = self.absolute(remote_path)

        async def read() -> bytes:
            async with self.channel.client().open(path, "rb") as handle:
                return bytes(await handle.read())

        return self.channel.run(read, "READ", timeout=None)

    def remove(self, remote_path: str) -> None:
        """Remove one file (`check` cleans up its probe with it)."""
        path = self.absolute(remote_path)
        self.channel.run(lambda: self.channel.client().remove(path), "REMOVE")

    def remove_stale_temp(self, remote_path: str) -> None:
        staging = temp_name(self.absolute(remote_path))

        async def remove() -> None:
            with contextlib.suppress(asyncssh.SFTPNoSuchFile):
                await self.channel.client().remove(staging)

        self.channel.run(remove, "REMOVE")

    # --- small files (the manifests) and what `verify` asks

    def put_small(self, remote_path: str, data: bytes, *, new: bool = False, then_read: bool = False) -> None:
        """`new` is not checked here: this transport answers no `Delivery.probe`, so it is never told so;
        `then_read` changes nothing (the read-back costs its own request)."""
        small_files.put_small(self, remote_path, data, atomic_rename=self.atomic_rename)

    def get_small(self, remote_path: str) -> bytes | None:
        return small_files.get_small(self, remote_path)

    def list_files(self, remote_dir: str) -> dict[str, int]:
        return small_files.list_files(self, remote_dir)

    def remote_sha256(self, remote_path: str) -> str | None:
        """None: OpenSSH's SFTP server has no hash extension (`sha256sum -c SHA256SUMS` there checks a day)."""
        return None

    @property
    def check(self) -> str:
        return "size"

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
        with local:
            opened = os.fstat(local.fileno()).st_size
            self._prepare_target(delivery, target)
            digest = hashlib.sha256() if self.checksum else None
            offset, sent = self._store_part(delivery, local, staging, progress, digest)
            if atomic and (now := os.fstat(local.fileno()).st_size) != opened:
                raise LocalFileChanged(f"{delivery.local_path} is {now} bytes now, {opened} when its upload began")
        reply = f"stored {sent} B" + (f" from {offset}" if offset else "")
        if atomic:
            reply = self.store.rename(staging, target, delivery)
            progress.renamed = True
        verified = self.store.verify(target, delivery.size) if delivery.verify_size else None
        sha256 = digest.hexdigest() if digest is not None else None
        by = "size" if verified else None
        return Delivered(sent, offset, reply, verified, time.monotonic() - started, sha256, by)

    def _prepare_target(self, delivery: Delivery, target: str) -> None:
        """The target's folders, then the overwrite guard (not needed in a folder this call created)."""
        fresh = self.store.makedirs(posixpath.dirname(target))
        if delivery.atomic_rename and delivery.may_replace is not None and not fresh:
            guard(delivery, target, self.store.size(target))

    def _store_part(
        self, delivery: Delivery, local: BinaryIO, staging: str, progress: DeliveryProgress, digest: Digest | None
    ) -> tuple[int, int]:
        """Choose the offset and store; a `.part` already whole is only renamed. Returns (offset, bytes sent).
        `digest` is fed the whole file: the bytes not sent again are read locally."""
        atomic = delivery.atomic_rename
        part = self.store.size(staging) if atomic and (delivery.resume or delivery.part_complete) else None
        if delivery.part_complete and part == delivery.size:
            log.debug("%s holds the whole file since an earlier attempt: renaming it", staging)
            if digest is not None:
                small_files.hash_local(local, delivery.size, digest)
            return 0, 0
        offset = self.store.resume_offset(part, delivery.size) if delivery.resume else 0
        if digest is not None and offset:
            small_files.hash_local(local, offset, digest)
        return offset, self.store.store(local, staging, offset, delivery.size, progress, digest)
