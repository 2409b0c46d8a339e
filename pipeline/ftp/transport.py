"""FtpTransport: FTP(S) behind the transport seam, `Transport` (pipeline.transport.base) made of the ftp parts.

One persistent, logged-in connection (`Connection`) with its folder cache (`Directories`), its size
questions (`RemoteSizes`) and the delivery protocol (`delivery.Upload`: `.part` -> rename -> verify).
`UploadSession` (pipeline.ftp.session) is the original API's facade over the same object.
"""

from __future__ import annotations

import logging
import posixpath
import threading
from collections.abc import Callable

from pipeline.ftp import burst, small_files
from pipeline.ftp.checks import DeliveryCheck
from pipeline.ftp.connection import Connection
from pipeline.ftp.delivery import Parts, Upload, temp_name
from pipeline.ftp.directories import Directories
from pipeline.ftp.errors import ConnectionLost, FtpFailure, PermanentFailure
from pipeline.ftp.params import FtpParams
from pipeline.ftp.sizes import RemoteSizes
from pipeline.ftp.store import DataSender
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress
from pipeline.transport.runs import BurstFile

log = logging.getLogger("beemon.sink.session")


class FtpTransport:
    """One persistent FTP(S) session as a sink worker uses it (see `pipeline.ftp.delivery` for the protocol).

    Not thread-safe: one worker thread owns it. `abort()` is the one method another thread may
    call: it cuts the sockets so that a transfer stuck past a stop deadline ends now.
    """

    def __init__(
        self,
        params: FtpParams,
        *,
        throttle: TokenBucket | None = None,
        use_sendfile: bool = True,
        aborted: threading.Event | None = None,
        checksum: bool = True,
        atomic_rename: bool = True,
    ) -> None:
        self.params = params
        #: False (`upload.atomic_rename`, a server that refuses renames): the manifest is stored under its name too
        self.atomic_rename = atomic_rename
        self.connection = Connection(params, aborted=aborted)
        self.features = self.connection.features
        self.directories = Directories(self.connection)
        self.sizes = RemoteSizes(self.connection)
        sender = DataSender(params.blocksize, throttle, use_sendfile, self.connection.aborted, checksum=checksum)
        self.parts = Parts(self.connection, self.directories, self.sizes, sender)
        #: FEAT, read at each login, and the check it allows after a delivery (hash, else size)
        self.checks = DeliveryCheck(checksum=checksum)
        #: the path `put_small` has just put on this connection (`get_small` reads it without a SIZE first),
        #: with its bytes when they were read back in the rename's flight
        self._just_put: tuple[str, bytes | None] | None = None
        #: the folder of the first delivery after the next connect (`first_folder`)
        self._first_folder: str | None = None

    def __repr__(self) -> str:
        p = self.params
        state = "connected" if self.connected else "closed"
        return f"{type(self).__name__}({p.username}@{p.host}:{p.port}{self.connection.root}, tls={p.tls}, {state})"

    @property
    def connected(self) -> bool:
        return self.connection.connected

    def first_folder(self, remote_dir: str) -> None:
        """The next connect's first delivery goes into `remote_dir`: its folders (and the data port) are asked
        for in the login's flight, when pipelining, instead of in a round trip of their own after it."""
        self._first_folder = remote_dir

    def connect(self) -> str:
        """Connect, secure (per `tls`), log in, PROT P, TYPE I. Raises an `FtpFailure` subclass."""
        self.directories.clear()
        folder, self._first_folder = self._first_folder, None
        path = self.connection.absolute(folder) if folder is not None and self.params.pipelining else None
        passive = self.features.passive_command if path is not None else None
        self.connection.after_login = self.directories.chain_lines(path, passive) if path not in (None, "/") else []
        welcome = self.connection.connect()
        self._just_put = None
        if self.connection.after_login_replies and path is not None:
            replies, self.connection.after_login_replies = self.connection.after_login_replies, []
            self._first_folder_answered(path, passive, replies)
        self.checks.learn(self)
        log.debug("session open: %r", self)
        return welcome

    def _first_folder_answered(self, path: str, passive: str | None, replies: list[str]) -> None:
        """Read the first folder's replies from the login's flight. The login succeeded: a refused data port
        (a 425, no passive port free) is not a failed connect but the upload's to meet, when it asks again;
        a server closing the session (421) fails the connect, and drops the connection so none is left open."""
        try:
            self.directories.chain_answered(path, passive, replies, ahead=True)
        except ConnectionLost:
            self.connection.discard()
            raise
        except FtpFailure as failure:
            log.debug("the first folder's steps in the login's flight failed (%s): its upload asks again", failure)

    def open_ahead(self, *, quiet: bool = True) -> bool:
        """Connect and read the welcome without logging in (`Connection.open_ahead`); `connect` logs in on it."""
        return self.connection.open_ahead(quiet=quiet)

    def deliver(self, delivery: Delivery, progress: DeliveryProgress) -> Delivered:
        """Deliver one file atomically (see `pipeline.ftp.delivery`); `progress` is filled in as it goes."""
        self.parts.sender.sent_sha256 = None
        upload = Upload(self.parts, delivery, progress, self.checks.hasher_for(delivery))
        return upload.run(lambda verified: self.checks.after(self, delivery, verified, upload.server_hash))

    def lean_ready(self, folder: str, size: int) -> bool:
        """Whether a file of `size` bytes into `folder` may go the lean way now (`pipeline.ftp.burst`): a small
        one, on a plain, pipelined, logged-in session that has made that folder, on a server with SIZE,
        checked by size, with no bandwidth cap."""
        client = self.connection.client
        return (
            size <= burst.BURST_MAX
            and client is not None
            and client.sock is not None
            and self.atomic_rename
            and client.can_send_early()
            and self.features.size
            and self.checks.check == "size"
            and getattr(self.parts.sender.throttle, "capped", True) is False
            and client.deferred_replies == 0
            and self.connection.absolute(folder) in self.directories.known
        )

    def lean_flow(
        self,
        first: BurstFile,
        following: Callable[[], tuple[bool, BurstFile | None]],
        verified: Callable[[BurstFile, Delivered], None],
    ) -> burst.Flow:
        """A run of small files over this session, for a loop to drive (`pipeline.ftp.burst.Flow`)."""
        self._just_put = None
        return burst.Flow(self, first, following, verified)

    @property
    def check(self) -> str:
        """The check this server allows after a delivery: "hash" or "size" (see `pipeline.ftp.checks`)."""
        return self.checks.check

    def put_small(self, remote_path: str, data: bytes, *, new: bool = False, then_read: bool = False) -> None:
        self._just_put = None
        back = small_files.put_small(
            self, remote_path, data, new=new, read_back=then_read, atomic_rename=self.atomic_rename
        )
        self._just_put = (self.connection.absolute(remote_path), back)

    def get_small(self, remote_path: str) -> bytes | None:
        """The file's content; the one this session has just put (and size-checked) is read without a SIZE first,
        or not at all when it was read back in the rename's flight."""
        path, just_put, self._just_put = self.connection.absolute(remote_path), self._just_put, None
        if just_put is not None and just_put[0] == path and just_put[1] is not None:
            return just_put[1]
        return small_files.get_small(self, path, exists=just_put is not None and just_put[0] == path)

    def list_files(self, remote_dir: str) -> dict[str, int]:
        return small_files.list_files(self, remote_dir)

    def remote_sha256(self, remote_path: str) -> str | None:
        return self.checks.remote_sha256(self, remote_path)

    def target_in_folder(self, remote_path: str, name: str) -> str:
        return self.directories.target_in_folder(remote_path, name)

    def keep_alive(self) -> None:
        self.connection.noop()

    def idle(self) -> None:
        self.connection.drop_passive()

    def remove_stale_temp(self, remote_path: str) -> None:
        staging = temp_name(self.connection.absolute(remote_path))
        try:
            self.connection.command(f"DELE {staging}")
        except PermanentFailure:  # 550: no such file, nothing to remove
            return
        self.directories.forget(posixpath.dirname(staging))

    def close(self, *, wait_reply: bool = True) -> None:
        self.connection.close(wait_reply=wait_reply)

    def abort(self) -> None:
        self.connection.abort()
