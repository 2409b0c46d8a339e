"""The delivery protocol: `.part` -> rename -> verify, as named steps.

Round trips are the currency on a station's link, so a connection logs in once, sets TYPE I once,
never changes directory per file (every path is absolute) and creates each remote folder at most
once. One small file costs EPSV, STOR, RNFR, RNTO and SIZE: three round trips with pipelining (EPSV;
STOR with the data sent at once, then the 150 and 226; RNFR+RNTO+SIZE in one flight), six
without; two when the caller has the next file ready (that file's EPSV rides in the rename's
flight). A server's hash of the renamed file (`hasher`: HASH or XSHA256) is asked in that flight
too, so the check by content adds no round trip (`server_hash`; `pipeline.ftp.checks` compares).

The steps of `Upload.run`: prepare the target (its folders; the overwrite guard), choose the
offset (resume, or only rename a `.part` that is already whole), store (see `pipeline.ftp.store`),
check that the local file did not change meanwhile, rename onto the final name, verify its size.
Decisions worth knowing:

- Rename onto an existing file: most servers (pyftpdlib, vsftpd, proftpd on POSIX) replace it.
  When RNTO is refused, the old final file is deleted and the rename tried again, once. A caller
  can guard the final name (`may_replace`): the target's size is asked in the STOR's own flight
  (pipelining; else one SIZE, skipped in a folder this upload just created) and an existing file
  it may not replace ends the upload with `TargetExists` before any byte is sent.
- A refused RNFR/RNTO (550/553) is a permanent failure for that file: the complete `.part` stays
  on the server and the file is parked; when the caller says that `.part` is this version's whole
  file (`part_complete`) and it still has the file's size, the next try only renames it. Set
  `upload.atomic_rename = false` for servers that never allow renames; files are then stored
  under their final name directly.
- Servers without SIZE: the size comes from MLST instead; with neither, the upload is trusted on
  the "226 Transfer complete" reply, reported unverified (`verified=None`), and logged once.
- A local file whose size changed while it was sent is not renamed (`LocalFileChanged`): the
  final name never shows a version the station was still writing.
- Resume: when the caller says the `.part` on the server holds the beginning of this very version
  of the file (`resume`: an earlier attempt's STOR of it had started sending, see `progress`) and
  that `.part` is shorter than the file but not empty, the upload continues from there. Any other
  `.part` is overwritten by a full STOR: its size alone proves nothing about whose bytes it holds.
"""

from __future__ import annotations

import logging
import os
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, NoReturn

from pipeline.ftp.connection import Connection
from pipeline.ftp.directories import Directories
from pipeline.ftp.errors import FtpFailure, LocalFileChanged, LocalFileGone, PermanentFailure, TransientFailure
from pipeline.ftp.hashing import RemoteHasher
from pipeline.ftp.read_back import flight_with_retr
from pipeline.ftp.replies import reply_code, reply_error
from pipeline.ftp.sizes import RemoteSizes
from pipeline.ftp.store import DataSender, Guard, Store
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress
from pipeline.transport.naming import temp_name

log = logging.getLogger("beemon.sink.session")


@dataclass(frozen=True, slots=True)
class Parts:
    """What a delivery runs on: one connection, its folder cache and size questions, the byte sender."""

    connection: Connection
    directories: Directories
    sizes: RemoteSizes
    sender: DataSender


class Upload:
    """One delivery of one file (see the module docstring); `run` once."""

    def __init__(
        self,
        parts: Parts,
        delivery: Delivery,
        progress: DeliveryProgress,
        hasher: RemoteHasher | None = None,
        *,
        read_back: bool = False,
    ) -> None:
        """`hasher`: ask the server's hash of the renamed file in the rename's flight (when pipelining).
        `read_back`: read the renamed file back in the rename's flight (`pipeline.ftp.read_back`)."""
        self.connection = parts.connection
        self.features = parts.connection.features
        self.directories = parts.directories
        self.sizes = parts.sizes
        self.delivery = delivery
        self.progress = progress
        self.store = Store(parts.connection, parts.sizes, parts.sender, progress)
        self.store.meanwhile = delivery.meanwhile
        self.target = self.connection.absolute(delivery.remote_path)
        self.staging = temp_name(self.target) if delivery.atomic_rename else self.target
        self.guard: Guard | None = None
        self.hasher = hasher
        #: (the server's SHA-256 of the final name, None when it has no such file) once asked in the
        #: rename's flight; None when not asked there (no hasher, no pipelining, a rename done again)
        self.server_hash: tuple[str | None] | None = None
        #: whether `Delivery.probe` exists, once asked in the rename's flight (None: not asked, or no clear answer)
        self.probed: bool | None = None
        self.read_back = read_back
        #: the renamed file's bytes, read back in the rename's flight (None: not read back there)
        self.read_back_data: bytes | None = None

    def run(self, check: Callable[[bool | None], tuple[str | None, str | None]] | None = None) -> Delivered:
        """Deliver the file; raises `LocalFileGone`, `LocalFileChanged` or an `FtpFailure` subclass.

        `check`, given the size check's result (`verified`), returns the report's `sha256` and
        `verified_by` (`DeliveryCheck.after`), so that the report is made once (a `dataclasses.replace`
        costs some 5 us, per file).
        """
        started = time.monotonic()
        with self._open_local() as local:
            opened = self.prepare_target(local)
            offset = self.choose_offset()
            if offset is None:
                offset, sent, reply = 0, 0, ""
            else:
                offset, sent, reply = self.store_file(local, offset)
            self.check_late_guard()
            self.check_unchanged(local, opened)
        size_reply = None
        if self.delivery.atomic_rename:
            reply, size_reply = self.rename()
            self.progress.renamed = True
        verified = self.verify(size_reply) if self.delivery.verify_size else None
        seconds = time.monotonic() - started
        sha256, verified_by = check(verified) if check is not None else (None, None)
        return Delivered(sent, offset, reply, verified, seconds, sha256, verified_by, self.probed)

    def _open_local(self) -> BinaryIO:
        try:
            return open(self.delivery.local_path, "rb", buffering=0)  # read in whole blocks: no buffer, no tty check
        except FileNotFoundError:
            raise LocalFileGone(self.delivery.local_path) from None

    # --- the steps

    def prepare_target(self, local: BinaryIO) -> int:
        """Make the target's folders; arm the overwrite guard unless the folder is new. Returns the local size now."""
        opened = os.fstat(local.fileno()).st_size
        fresh = self.directories.make_remote_directories(posixpath.dirname(self.target), port_ahead=True)
        d = self.delivery
        if d.atomic_rename and d.may_replace is not None and not fresh:
            self.guard = Guard(self.target, d.local_path, d.size, d.may_replace)
        return opened

    def choose_offset(self) -> int | None:
        """Where the store starts: the `.part`'s size when resuming this version; None: the `.part` is whole."""
        d = self.delivery
        resume = d.resume and not self.features.resumes_refused
        existing = None
        if d.atomic_rename and (resume or d.part_complete):
            paths = [self.staging] if self.guard is None else [self.staging, self.target]
            existing, *probed = self.sizes.many(paths)
            if self.guard is not None:
                self.guard.check(probed[0])
                self.guard = None
        if d.part_complete and existing == d.size:
            log.debug("%s holds the whole file since an earlier attempt: renaming it", self.staging)
            return None
        if resume and not d.part_complete and existing is not None and 0 < existing < d.size:
            return existing
        return 0

    def store_file(self, local: BinaryIO, offset: int) -> tuple[int, int, str]:
        """Store into the temporary name; a folder lost on the server since it was cached is made again, once."""
        try:
            return self.store.transfer(local, self.staging, offset, self.delivery.size, self.guard)
        except PermanentFailure as failure:
            if reply_code(failure.reply) != 550 or failure.command not in ("STOR", "APPE"):
                raise
            folder = posixpath.dirname(self.staging)
            self.directories.forget(folder)
            self.directories.make_remote_directories(folder)
            return self.store.transfer(local, self.staging, offset, self.delivery.size)

    def check_late_guard(self) -> None:
        """The guard the STOR's flight could not decide (no SIZE there after all), asked now the transfer is over."""
        late, self.store.late_guard = self.store.late_guard, None
        if late is not None:
            late.check(self.sizes.size(self.target))

    def check_unchanged(self, local: BinaryIO, opened: int) -> None:
        """A file that grew or shrank while it was sent stays under the temporary name (not a short final one)."""
        if self.delivery.atomic_rename and (now := os.fstat(local.fileno()).st_size) != opened:
            raise LocalFileChanged(f"{self.delivery.local_path} is {now} bytes now, {opened} when its upload began")

    def rename(self) -> tuple[str, str | None]:
        """RNFR/RNTO (in one flight with SIZE and the next EPSV when pipelining); returns (RNTO reply, SIZE reply).

        When RNTO is refused, an existing target is deleted and the rename tried once more.
        """
        if self.connection.params.pipelining:
            done, refused = self._rename_in_one_flight()
        else:
            done, refused = self._rename_step_by_step()
        if done is not None:
            return done
        return self._replace_target(refused), None

    def verify(self, size_reply: str | None) -> bool | None:
        """Compare the target's size with the local one; `size_reply` is a SIZE answer already received."""
        target, size = self.target, self.delivery.size
        remote = self.sizes.from_reply(target, size_reply) if size_reply is not None else self.sizes.size(target)
        if remote is None:
            if self.features.can_size:
                raise TransientFailure(f"{target} is not on the server after the upload", command="SIZE")
            if self.features.warn_unverified():
                log.warning(
                    "%s has neither SIZE nor MLST: uploads are trusted on the server's 226 reply and local"
                    " files are deleted unverified (unless upload.delete_after_upload = false)",
                    self.features.where,
                )
            return None
        if remote != size:
            raise TransientFailure(f"size mismatch: the server has {remote} bytes, local {size}", command="SIZE")
        return True

    # --- the rename's parts

    def _rename_in_one_flight(self) -> tuple[tuple[str, str | None] | None, FtpFailure | None]:
        lines = [f"RNFR {self.staging}", f"RNTO {self.target}"]
        if self.delivery.verify_size and self.features.size:
            lines.append(f"SIZE {self.target}")
        hashing = self.hasher.flight(self.target) if self.hasher is not None else []
        probe = self._probe_line()
        passive = self.connection.passive_request(self.delivery.next_upload)
        extra = [line for line in (probe, passive) if line is not None]
        flight = [*lines, *hashing, *extra]
        back: bytes | None = None
        if self.read_back and passive is not None:  # the port is the read-back's, not a next upload's
            replies, back = flight_with_retr(self.connection, flight, self.target, self.delivery.size)
            replies.pop()
        else:
            replies = self.connection.batch(flight)
            if passive is not None:
                self.connection.keep_passive(replies.pop())
        if probe is not None:
            self.probed = probe_answer(replies.pop())
        hashed = replies[len(lines) :]  # read, whatever became of the rename: the next reply is the next command's
        rnfr, rnto, *size_reply = replies[: len(lines)]
        if not rnfr.startswith("3"):
            self._rename_refused(reply_error(rnfr), "RNFR")
        if not rnto.startswith("2"):
            return None, self.connection.classify(reply_error(rnto), "RNTO")
        if self.hasher is not None:
            self.server_hash = (self.hasher.answer(hashed),)
        self.read_back_data = back  # read after this very rename: the target is this file
        return (rnto, size_reply[0] if size_reply else None), None

    def _probe_line(self) -> str | None:
        """The SIZE of `Delivery.probe` for the rename's flight (a server without SIZE is not asked)."""
        if self.delivery.probe is None or not self.features.size:
            return None
        return f"SIZE {self.connection.absolute(self.delivery.probe)}"

    def _rename_step_by_step(self) -> tuple[tuple[str, str | None] | None, FtpFailure | None]:
        try:
            self.connection.command(f"RNFR {self.staging}")
        except FtpFailure as failure:
            self._rename_refused(failure, "RNFR")
        try:
            return (self.connection.command(f"RNTO {self.target}"), None), None
        except FtpFailure as failure:
            return None, failure

    def _replace_target(self, refused: FtpFailure | None) -> str:
        """RNTO was refused: delete the existing target and rename once more."""
        if not isinstance(refused, PermanentFailure):
            raise refused if refused is not None else PermanentFailure("rename refused", command="RNTO")
        try:
            self.connection.command(f"DELE {self.target}")
        except PermanentFailure:
            raise PermanentFailure(f"rename refused: {refused.reply}", command="RNTO") from None
        log.debug("replaced %s: the server would not rename onto an existing file", self.target)
        try:
            self.connection.command(f"RNFR {self.staging}")
            return self.connection.command(f"RNTO {self.target}")
        except PermanentFailure as failure:
            raise PermanentFailure(f"rename refused: {failure.reply}", command="RNTO") from None

    def _rename_refused(self, error: BaseException, command: str) -> NoReturn:
        """Raise the right failure for a refused RNFR: transient, vanished temp file, or refused rename."""
        failure = self.connection.classify(error, command)
        if not isinstance(failure, PermanentFailure):
            raise failure
        if reply_code(failure.reply) == 550 and self.features.can_size and self.sizes.size(self.staging) is None:
            raise TransientFailure(f"{self.staging} vanished on the server: {failure.reply}", command=command)
        raise PermanentFailure(f"rename refused: {failure.reply}", command=command)


def probe_answer(reply: str) -> bool | None:
    """A SIZE reply read as "exists" (213), "missing" (550), or None: anything else (busy, refused as unknown)."""
    code = reply_code(reply)
    return True if code == 213 else False if code == 550 else None
