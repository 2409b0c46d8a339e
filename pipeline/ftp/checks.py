"""After a delivery: which check the server allows (learned from FEAT at each login) and the hash check itself.

The strongest check the server offers is used: its own SHA-256 of the renamed file compared with the
one computed from the bytes sent ("hash"); else the size the session already compared ("size");
else none. A hash that differs is a failed delivery: the local file stays and the retry replaces
the remote copy. Which check is in force is logged once per server and check (not per reconnect).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from pipeline.ftp.errors import FtpFailure, TransientFailure
from pipeline.ftp.features import Feat
from pipeline.ftp.hashing import RemoteHasher, file_sha256, mismatch_line
from pipeline.ftp.replies import reply_error
from pipeline.transport.base import Delivery
from pipeline.transport.errors import HashMismatch

if TYPE_CHECKING:
    from pipeline.ftp.transport import FtpTransport

log = logging.getLogger("beemon.sink.session")

_announced: set[tuple[str, int, str]] = set()
_announced_lock = threading.Lock()

_CHECK_TEXT = {
    "hash": "the server's SHA-256 of each renamed file ({command}) against the one of the bytes sent",
    "size": "the size of each renamed file (the server offers no SHA-256 command, or upload.checksum = none)",
    "none": "nothing: the server tells neither sizes nor hashes; uploads are trusted on its 226 reply",
}


class DeliveryCheck:
    """One session's server features and the check they allow (`learn` after each login)."""

    def __init__(self, *, checksum: bool) -> None:
        self.checksum = checksum
        self.features = Feat()
        self._hasher: RemoteHasher | None = None

    @property
    def check(self) -> str:
        return "hash" if self._hasher is not None else "size"

    def learn(self, ftp: FtpTransport) -> None:
        """FEAT once per login (a refused FEAT means no features), then say once which check is in force."""
        try:
            self.features = Feat.parse(self._feat_reply(ftp))
        except FtpFailure as failure:
            if not failure.session_usable:
                raise
            self.features = Feat()
        command = self.features.sha256_command
        self._hasher = RemoteHasher(ftp.connection, command) if self.checksum and command else None
        check = self.features.check(checksum=self.checksum, can_size=ftp.features.can_size)
        key = (ftp.params.host, ftp.params.port, check)
        with _announced_lock:
            if key in _announced:
                return
            _announced.add(key)
        log.info(
            "deliveries to %s:%d are checked by %s",
            ftp.params.host,
            ftp.params.port,
            _CHECK_TEXT[check].format(command=command),
        )

    @staticmethod
    def _feat_reply(ftp: FtpTransport) -> str:
        """FEAT's reply: the one the login's flight read, else asked now; a refusal raised as its `FtpFailure`."""
        reply = ftp.connection.take_login_feat()
        if reply is None:
            return ftp.connection.command("FEAT")
        if not reply.startswith("2"):
            with ftp.connection.mapped("FEAT"):
                raise reply_error(reply)
        return reply

    def remote_sha256(self, ftp: FtpTransport, remote_path: str) -> str | None:
        """The server's SHA-256 of `remote_path`, None when it has no hash command or no such file."""
        command = self.features.sha256_command
        if command is None:
            return None
        hasher = self._hasher or RemoteHasher(ftp.connection, command)
        return hasher.sha256(ftp.connection.absolute(remote_path))

    def hasher_for(self, delivery: Delivery) -> RemoteHasher | None:
        """The hasher whose question may ride in `delivery`'s rename flight, None when there is nothing to ask."""
        return self._hasher if delivery.verify_size else None

    def after(
        self, ftp: FtpTransport, delivery: Delivery, verified: bool | None, server_hash: tuple[str | None] | None = None
    ) -> tuple[str | None, str | None]:
        """The file's SHA-256 and how it was checked (`Delivered.sha256`, `verified_by`), the size check's result
        being `verified`; raises when the server hashes it differently.

        `server_hash`: the server's answer already read in the rename's flight (else it is asked now).
        """
        digest = ftp.parts.sender.sent_sha256
        if self.checksum and digest is None:  # renamed a complete `.part` without sending: read the file
            with open(delivery.local_path, "rb") as local:
                digest = file_sha256(local, delivery.size).hexdigest()
        verified_by = "size" if verified else None
        if digest is not None and self._hasher is not None and delivery.verify_size:
            target = ftp.connection.absolute(delivery.remote_path)
            remote = server_hash[0] if server_hash is not None else self._hasher.sha256(target)
            if remote is None:
                raise TransientFailure(f"{target} is not on the server after the upload", command="HASH")
            if remote != digest:
                line = mismatch_line(target, digest, remote)
                log.warning("%s: the local file stays and is sent again", line)
                raise HashMismatch("the server's SHA-256 of the copy differs from the bytes sent", command="HASH")
            verified_by = "hash"
        return digest, verified_by
