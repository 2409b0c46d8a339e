"""UploadSession: one authenticated, persistent FTP(S) session that delivers files atomically.

Round trips are the currency on a station's link, so a session logs in once, sets TYPE I once,
never changes directory per file (every path is absolute) and creates each remote folder at most
once. One small file costs EPSV, STOR, RNFR, RNTO and SIZE: four round trips with pipelining
(EPSV; STOR while the data connection opens; the 226; RNFR+RNTO+SIZE in one flight), six without;
three when the caller has the next file ready (that file's EPSV rides in the rename's flight).

One upload: STOR to `.<name>.part` beside the target, RNFR/RNTO onto the final name, SIZE of the
final name against the local size. Decisions worth knowing:

- Rename onto an existing file: most servers (pyftpdlib, vsftpd, proftpd on POSIX) replace it.
  When RNTO is refused, the session deletes the old final file and renames again, once. A caller
  can guard the final name (`may_replace`): the target's size is asked in the STOR's own flight
  (pipelining; else one SIZE, skipped in a folder this upload just created) and an existing file
  it may not replace ends the upload with `TargetExists` before any byte is sent.
- A refused RNFR/RNTO (550/553) is a permanent failure for that file: the complete `.part` stays
  on the server and the file is parked; when the caller says that `.part` is this version's whole
  file (`part_complete`) and it still has the file's size, the next try only renames it. Set
  `upload.atomic_rename = false` for servers that never allow renames; files are then stored
  under their final name directly.
- Servers without SIZE: the size comes from MLST instead; with neither, the session logs once that
  it trusts the "226 Transfer complete" reply and reports the upload as unverified (`verified=None`).
- A local file whose size changed while it was sent is not renamed (`LocalFileChanged`): the
  final name never shows a version the station was still writing.
- Resume: when the caller says the `.part` on the server holds the beginning of this very version
  of the file (`resume`: an earlier attempt's STOR of it had started sending, see `progress`) and
  that `.part` is shorter than the file but not empty, the upload continues with REST + STOR (APPE
  if REST is refused). Any other `.part` is overwritten by a full STOR: its size alone proves
  nothing about whose bytes it holds. A server that refuses the resumed STOR (ProFTPD's default
  answers "451 Append/Restart not permitted") gets the whole file at once instead; when that STOR
  is accepted, the session remembers that this server refuses resumes and stops asking.
- TLS: certificates are verified by default; data connections reuse the control connection's TLS
  session (see `ftp_client`). Plain FTP sends with `socket.sendfile` (zero-copy); TLS, and plain
  FTP with sendfile off (or a bandwidth limit's smaller chunks), send blocks of `blocksize`.
"""

from __future__ import annotations

import contextlib
import ftplib
import hashlib
import logging
import os
import posixpath
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, BinaryIO, NoReturn

from pipeline.ftp.client import UNSUPPORTED, FtpClient, make_context, reply_error
from pipeline.ftp.errors import (
    ConnectionLost,
    FtpFailure,
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TargetExists,
    TransientFailure,
    classify,
    reply_code,
)
from pipeline.ftp.hashing import send_hashed
from pipeline.ftp.params import FtpParams
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, DeliveryProgress

log = logging.getLogger("beemon.sink.session")

#: The steps of `connect`: the password is sent in one of them, so their errors are masked.
LOGIN_STEPS = frozenset({"CONNECT", "AUTH", "USER", "PASS", "PROT", "PBSZ", "TYPE"})
_MLST_SIZE = re.compile(r"(?:^|;)\s*size=(\d+)", re.IGNORECASE | re.MULTILINE)


#: The names this module used before the transport seam: the same types.
UploadReport = Delivered
UploadProgress = DeliveryProgress


@dataclass(frozen=True, slots=True)
class _Guard:
    """The caller's rule for an existing file at the final name (`upload`'s `may_replace`)."""

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


def _original_params(
    username: str | None,
    keyword_username: str | None,
    password: str | None,
    host_ip: str | None,
    host_port: int | str | None,
    remote_directory: str | None,
) -> FtpParams:
    """FtpParams from the original constructor's arguments (given positionally or by keyword)."""
    user = username if username is not None else keyword_username
    given = {"username": user, "password": password, "host_ip": host_ip, "host_port": host_port}
    missing = [name for name, value in given.items() if value is None]
    if remote_directory is None:
        missing.append("remote_directory")
    if missing:
        raise TypeError(f"UploadSession() is missing {', '.join(missing)} (or give FtpParams)")
    return FtpParams(str(host_ip), int(host_port), str(user), str(password), str(remote_directory))


#: The longest file name most servers' file systems take, in bytes (ext4, XFS, btrfs, ZFS, NTFS).
NAME_MAX = 255


def temp_name(remote_path: str) -> str:
    """The hidden temporary name beside the target: `dir/.name.part`, or `dir/.<hash>.part` where that is too long.

    A name of 250-255 bytes leaves no room for the dot and `.part`: the server would refuse every
    STOR (553). The short name is a digest of the name, the same at every attempt, so resuming
    this file's own `.part` and overwriting a stale one work as for any other name.
    """
    directory, name = posixpath.split(remote_path)
    staging = f".{name}.part"
    if len(staging.encode("utf-8", "surrogateescape")) > NAME_MAX:
        staging = f".{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.part"
    return posixpath.join(directory, staging)


class UploadSession:
    """One authenticated session under `params.remote_root`; a context manager (connect, then QUIT).

    Not thread-safe: one worker thread owns a session. `abort()` is the one method another thread
    may call: it cuts the sockets so that a transfer stuck past a stop deadline ends now.

    Two ways to build one. This project's: `UploadSession(FtpParams(...))`, whose `with` value is
    the session itself. The original API's: `UploadSession(username, password, host_ip, host_port,
    remote_directory)`, positionally or by keyword (plain FTP). Its `with` value is the logged-in
    `ftplib.FTP` connection, changed into `remote_directory` (created when missing), which is what
    the original's helpers (`UploadHelper.make_directory`, code calling `pwd`, `cwd`,
    `storbinary`) take.
    """

    def __init__(
        self,
        params: FtpParams | str | None = None,
        password: str | None = None,
        host_ip: str | None = None,
        host_port: int | str | None = None,
        remote_directory: str | None = None,
        *,
        username: str | None = None,
        throttle: TokenBucket | None = None,
        use_sendfile: bool = True,
        aborted: threading.Event | None = None,
    ) -> None:
        self._original = not isinstance(params, FtpParams)
        if not isinstance(params, FtpParams):
            params = _original_params(params, username, password, host_ip, host_port, remote_directory)
        self.params = params
        self._throttle = throttle
        self._use_sendfile = use_sendfile
        self._aborted = aborted or threading.Event()
        self._client: FtpClient | None = None
        self._dirs: set[str] = set()
        self._root = posixpath.normpath("/" + params.remote_root.strip("/")) if params.remote_root else "/"
        self._size_command = True
        self._mlst_command = True
        self._warned_unverified = False
        self._progress = UploadProgress()
        self._late_guard: _Guard | None = None  # a guard the STOR's flight could not decide
        self._context: ssl.SSLContext | None = None  # made at the first secure connect, then reused
        #: the server refused a resumed STOR and took the whole file instead: send whole files from now on
        self.resumes_refused = False
        self.welcome = ""
        #: hash what is sent (`pipeline.ftp.hashing`), set by the transport; the digest lands in `sent_sha256`
        self.checksum = False
        self.sent_sha256: str | None = None

    @classmethod
    def original(
        cls, username: str, password: str, host_ip: str, host_port: int, remote_directory: str
    ) -> UploadSession:
        """The original API's constructor arguments, plain FTP (the same as calling the class with them)."""
        return cls(username, password, host_ip, host_port, remote_directory)

    def __repr__(self) -> str:
        p = self.params
        state = "connected" if self.connected else "closed"
        return f"UploadSession({p.username}@{p.host}:{p.port}{self._root}, tls={p.tls}, {state})"

    # --- connection

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.sock is not None

    @property
    def last_data_session_reused(self) -> bool | None:
        """Whether the last TLS data connection resumed the control connection's TLS session."""
        return self._client.last_data_session_reused if self._client else None

    def __enter__(self) -> Any:
        """This session; for one built the original way, its `ftplib.FTP` connection in `remote_directory`."""
        if not self.connected:
            self.connect()
        if not self._original:
            return self
        try:
            self.make_remote_directories(self._root)
            self._command(f"CWD {self._root}")
        except BaseException:
            self.close()
            raise
        return self._client

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def connect(self) -> str:
        """Connect, secure (per `tls`), log in, PROT P, TYPE I. Raises an `FtpFailure` subclass."""
        self.close()
        p = self.params
        try:
            context = self._tls_context()
        except (OSError, ssl.SSLError, ValueError) as error:  # checked at start; changed on disk since
            raise SessionFailure(f"cannot use ftp.ca_file {p.ca_file!r}: {error}", command="TLS") from None
        client = FtpClient(implicit=p.tls == "implicit", context=context, timeout=p.timeout, pipelining=p.pipelining)
        step = "CONNECT"
        try:
            self.welcome = client.connect(p.host, p.port)
            self._client = client
            if p.tls == "explicit":
                step = "AUTH"
                client.auth()
            step = "USER"
            client.login(p.username, p.password, secure=False)
            if p.secure:
                step = "PROT"
                client.prot_p()
            step = "TYPE"
            client.voidcmd("TYPE I")
        except Exception as error:
            self._discard()
            with contextlib.suppress(Exception):
                client.close()
            failure = self._classify(error, step)
            if isinstance(failure, SessionFailure) or failure.command in ("CONNECT", "AUTH"):
                failure.reply = f"{p.host}:{p.port}: {failure.reply}"
            raise failure from None
        self._dirs.clear()
        log.debug("session open: %r", self)
        return self.welcome

    def _tls_context(self) -> ssl.SSLContext | None:
        """The context of this session's TLS connections, made once; None for plain FTP, which needs none.

        Loading the CA certificates costs some 20 ms of CPU: paid at the first connect rather than at
        every reconnect (through an outage the workers retry for as long as it lasts), and not at all
        without TLS.
        """
        if self.params.secure and self._context is None:
            self._context = make_context(self.params)
        return self._context

    def close(self) -> None:
        """QUIT politely when the connection is still in step, then close. Never raises."""
        client = self._client
        if client is None:
            return
        with contextlib.suppress(Exception):  # the connection is going away either way
            if client.sock is not None:
                client.sock.settimeout(min(self.params.timeout, 2.0))
                client.quit()
        self._discard()

    def _discard(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def abort(self) -> None:
        """Cut the data and control sockets (from another thread): the owner's call fails at once.

        Sets `aborted` (shared by the sink's sessions) after the cut, so a sender woken from a
        bandwidth wait finds its socket closed rather than racing to finish the file.
        """
        client = self._client
        if client is not None:
            for sock in (client.data_socket, client.sock):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
        self._aborted.set()

    def drop_passive(self) -> None:
        """Close a passive port asked for ahead (`upload`'s `next_upload`) that no transfer used.

        Servers time an unused passive port out, and some (pyftpdlib) then send an unrequested 421
        that would put the session out of step. ABOR closes it; one round trip, rarely needed.
        """
        client = self._client
        if client is None or client.passive_ahead is None:
            return
        client.passive_ahead = None
        with contextlib.suppress(FtpFailure):  # refused: the port times out on its own; lost: discarded
            self._command("ABOR")

    def client(self) -> FtpClient:
        """The logged-in control connection, for a transfer of the helpers in `pipeline.ftp` (RETR, MLSD)."""
        return self._require()

    def command(self, line: str) -> str:
        """One command and its reply, failures classified (for the helpers in `pipeline.ftp`: FEAT, HASH)."""
        return self._command(line)

    def noop(self) -> str:
        """Keep an idle session alive (servers drop silent ones)."""
        return self._command("NOOP")

    def delete(self, remote_path: str) -> str:
        """DELE one remote file (absolute, or relative to the root)."""
        return self._command(f"DELE {self.absolute(remote_path)}")

    # --- commands

    def _classify(self, error: BaseException, command: str) -> FtpFailure:
        """`classify`; the password is masked in what the login steps raise (a server may echo it there).

        Only there: masking it wherever it occurs would give it away (a password "audio" would show
        as the `***` in every masked path).
        """
        login = command.split(" ", 1)[0].upper() in LOGIN_STEPS
        return classify(error, command=command, secret=self.params.password if login else "")

    def _require(self) -> FtpClient:
        if self._client is None:
            raise ConnectionLost("not connected")
        return self._client

    def _command(self, line: str) -> str:
        """Send one command and return its reply; failures are classified; a lost connection is closed."""
        client = self._require()
        try:
            return client.voidcmd(line) if not line.startswith(("RNFR", "REST")) else client.sendcmd(line)
        except Exception as error:
            failure = self._classify(error, line)
            if not failure.session_usable:
                self._discard()
            raise failure from None

    def absolute(self, remote_path: str) -> str:
        """A remote path made absolute: relative paths are taken under `remote_root`."""
        if remote_path.startswith("/"):
            return posixpath.normpath(remote_path)
        return posixpath.normpath(posixpath.join(self._root, remote_path))

    # --- directories

    def make_directory(self, name: str) -> bool:
        """Create one remote directory unless it exists ("already exists" is success); cached per session.

        Returns True when this call created it. The original API returned an error string; this
        raises `PermanentFailure` with the reply.
        """
        path = self.absolute(name)
        if path in self._dirs or path == "/":
            return False
        created = True
        try:
            self._command(f"MKD {path}")
        except PermanentFailure as failure:
            if not self._exists_after_refusal(path, failure):
                raise PermanentFailure(f"cannot create {path}: {failure.reply}", command="MKD") from None
            created = False
        self._remember(path)
        return created

    def make_remote_directories(self, remote_dir: str) -> bool:
        """Make `remote_dir` and any missing parents (`<root>/<station>/<date>/<sensor>`), once per session.

        Walks up from the deepest folder to the first that exists, then creates downwards: a new
        folder in an existing tree costs one MKD, a new date with its sensor folder four round trips.
        Returns True when this call created `remote_dir` itself (so it is empty).
        """
        path = self.absolute(remote_dir)
        missing: list[str] = []
        current = path
        created = False
        while current != "/" and current not in self._dirs:
            try:
                self._command(f"MKD {current}")
                created = current == path
                break
            except PermanentFailure as failure:
                if self._exists_after_refusal(current, failure):
                    break
            missing.append(current)
            current = posixpath.dirname(current)
        self._remember(current)
        for directory in reversed(missing):
            created = self.make_directory(directory)
        return created

    def _exists_after_refusal(self, path: str, failure: PermanentFailure) -> bool:
        """Whether a refused MKD means "already exists": 521 says so; a 550 needs one CWD to tell."""
        if reply_code(failure.reply) == 521:
            return True
        try:
            self._command(f"CWD {path}")
        except PermanentFailure:
            return False
        return True

    def is_directory(self, remote_path: str) -> bool:
        """Whether `remote_path` is an existing folder on the server (known, or one CWD to tell)."""
        path = self.absolute(remote_path)
        if path == "/" or path in self._dirs:
            return True
        try:
            self._command(f"CWD {path}")
        except PermanentFailure:
            return False
        self._remember(path)
        return True

    def target_in_folder(self, remote_path: str, name: str) -> str:
        """Where a file called `name` sent to `remote_path` lands: inside it when it is a folder (named with
        a trailing "/" or existing on the server), else at `remote_path` itself."""
        if remote_path.endswith("/") or self.is_directory(remote_path):
            return posixpath.join(remote_path, name)
        return remote_path

    def _remember(self, path: str) -> None:
        """`path` exists, so do all its parents."""
        while path != "/" and path not in self._dirs:
            self._dirs.add(path)
            path = posixpath.dirname(path)

    def forget_directories(self, path: str) -> None:
        """Drop `path` and its parents from the cache (the server lost them behind the session's back)."""
        path = self.absolute(path)
        while path != "/":
            self._dirs.discard(path)
            path = posixpath.dirname(path)

    # --- sizes

    def remote_size(self, path: str) -> int | None:
        """The size of a remote file, None when it does not exist or the server cannot tell.

        SIZE first; MLST when SIZE is unsupported; `self.can_size` turns False when neither works.
        """
        path = self.absolute(path)
        if self._size_command:
            try:
                return int(self._command(f"SIZE {path}").split()[1])
            except PermanentFailure as failure:
                if reply_code(failure.reply) not in UNSUPPORTED:
                    return None
                self._size_command = False
                log.debug("server has no SIZE command (%s); trying MLST", failure.reply)
            except (IndexError, ValueError):
                return None
        if self._mlst_command:
            client = self._require()
            try:
                reply = client.sendcmd(f"MLST {path}")
            except ftplib.error_perm as error:
                if reply_code(error) not in UNSUPPORTED:
                    return None
                self._mlst_command = False
                log.debug("server has no MLST command either (%s)", error)
            except Exception as error:
                failure = self._classify(error, "MLST")
                if not failure.session_usable:
                    self._discard()
                raise failure from None
            else:
                match = _MLST_SIZE.search(reply)
                return int(match.group(1)) if match else None
        return None

    def _size_from_reply(self, path: str, reply: str) -> int | None:
        """Read a SIZE reply that came in a pipelined flight, as `remote_size` would read its own."""
        code = reply_code(reply)
        if code == 213:
            with contextlib.suppress(IndexError, ValueError):
                return int(reply.split()[1])
            return None
        if code in UNSUPPORTED:
            self._size_command = False
            log.debug("server has no SIZE command (%s); trying MLST", reply.strip())
            return self.remote_size(path)
        return None

    @property
    def _probe_command(self) -> str | None:
        """The command that tells a file's size here (SIZE, else MLST), None when there is none."""
        return "SIZE" if self._size_command else "MLST" if self._mlst_command else None

    def _probed_size(self, path: str, command: str | None, reply: str) -> int | None:
        """Read the reply to a pipelined SIZE or MLST of `path` (`_probe_command`)."""
        if command == "SIZE":
            return self._size_from_reply(path, reply)
        code = reply_code(reply)
        if code == 250:
            match = _MLST_SIZE.search(reply)
            return int(match.group(1)) if match else None
        if code in UNSUPPORTED:
            self._mlst_command = False
        return None

    def _sizes(self, paths: list[str]) -> list[int | None]:
        """`remote_size` of several paths, in one flight when pipelining."""
        command = self._probe_command
        if not self.params.pipelining or command is None or len(paths) < 2:
            return [self.remote_size(path) for path in paths]
        replies = self._batch([f"{command} {path}" for path in paths])
        return [self._probed_size(path, command, reply) for path, reply in zip(paths, replies, strict=True)]

    @property
    def can_size(self) -> bool:
        """Whether this server can tell a file's size (SIZE or MLST) as far as the session knows."""
        return self._size_command or self._mlst_command

    # --- upload

    def upload(
        self,
        local_path: str,
        remote_path: str,
        size: int,
        *,
        resume: bool = False,
        part_complete: bool = False,
        atomic_rename: bool = True,
        verify_size: bool = True,
        next_upload: Callable[[], bool] | None = None,
        progress: UploadProgress | None = None,
        may_replace: Callable[[int], bool] | None = None,
    ) -> UploadReport:
        """Deliver `size` bytes of `local_path` to `remote_path` (absolute, or relative to the root).

        Raises `LocalFileGone`, `LocalFileChanged` or an `FtpFailure` subclass; on success the final
        name holds the whole file (checked by size unless the server cannot tell).

        `next_upload`, asked just before the rename, says whether this session's next call is
        another upload: then the rename's flight also asks for the next passive port (one round
        trip fewer per file). A caller that then does not upload calls `drop_passive`.

        `progress`, when given, is filled in as the upload goes (read it after a failure too).

        `may_replace` (with `atomic_rename`) is asked with the size of a file already at the final
        name; False ends the upload with `TargetExists` before any byte is sent (see the module docstring).
        """
        self._progress = progress if progress is not None else UploadProgress()
        self._late_guard = None
        self.sent_sha256 = None
        started = time.monotonic()
        target = self.absolute(remote_path)
        staging = temp_name(target) if atomic_rename else target
        try:
            local = open(local_path, "rb")  # noqa: SIM115 - closed below, after the transfer
        except FileNotFoundError:
            raise LocalFileGone(local_path) from None
        with local:
            opened = os.fstat(local.fileno()).st_size
            fresh = self.make_remote_directories(posixpath.dirname(target))
            guard = None
            if atomic_rename and may_replace is not None and not fresh:
                guard = _Guard(target, local_path, size, may_replace)
            offset, sent, reply = 0, 0, ""
            existing = None
            resume = resume and not self.resumes_refused
            if atomic_rename and (resume or part_complete):
                existing, *probed = self._sizes([staging, target] if guard is not None else [staging])
                if guard is not None:
                    guard.check(probed[0])
                    guard = None
            if part_complete and existing == size:
                log.debug("%s holds the whole file since an earlier attempt: renaming it", staging)
            else:
                if resume and not part_complete and existing is not None and 0 < existing < size:
                    offset = existing
                offset, sent, reply = self._store_with_retry_on_missing_dir(local, staging, offset, size, guard)
            if self._late_guard is not None:
                late, self._late_guard = self._late_guard, None
                late.check(self.remote_size(target))
            if atomic_rename and (now := os.fstat(local.fileno()).st_size) != opened:
                # It grew (or shrank) while it was sent: what the server holds is not the file, so it
                # stays under the temporary name rather than show a short version under the final one.
                raise LocalFileChanged(f"{local_path} is {now} bytes now, {opened} when its upload began")
        size_reply = None
        if atomic_rename:
            reply, size_reply = self._rename(staging, target, ask_size=verify_size, next_upload=next_upload)
            self._progress.renamed = True
        verified: bool | None = None
        if verify_size:
            verified = self._verify(target, size, size_reply)
        return UploadReport(sent, offset, reply, verified, time.monotonic() - started)

    def _store_with_retry_on_missing_dir(
        self, local: BinaryIO, path: str, offset: int, size: int, guard: _Guard | None = None
    ) -> tuple[int, int, str]:
        try:
            return self._store(local, path, offset, size, guard)
        except PermanentFailure as failure:
            if reply_code(failure.reply) != 550 or failure.command not in ("STOR", "APPE"):
                raise
            # The folder may have been removed on the server after this session cached it.
            self.forget_directories(posixpath.dirname(path))
            self.make_remote_directories(posixpath.dirname(path))
            return self._store(local, path, offset, size)

    def _store(
        self, local: BinaryIO, path: str, offset: int, size: int, guard: _Guard | None = None
    ) -> tuple[int, int, str]:
        """One STOR (or REST + STOR, or APPE) of `local[offset:size]`; returns (offset, bytes sent, 226 reply).

        With a `guard`, the final name's size is asked in the STOR's flight (else just before) and
        checked before a byte is sent. A refused resume falls back to a STOR of the whole file (offset 0).
        """
        client = self._require()
        command, rest = f"STOR {path}", (offset or None)
        probe, probed = self._probe_command if guard is not None else None, ""
        try:
            try:
                if guard is not None and probe is not None and client.can_overlap(rest):
                    conn, (probed,) = client.transfer_after([f"{probe} {guard.target}"], command)
                else:
                    if guard is not None:
                        guard.check(self.remote_size(guard.target))
                        guard = None
                    conn, _ = client.ntransfercmd(command, rest)
            except ftplib.error_perm as error:
                if rest is None or reply_code(error) not in UNSUPPORTED:
                    raise
                command, rest = f"APPE {path}", None  # REST refused: append to the partial file instead
                conn, _ = client.ntransfercmd(command)
        except (ftplib.error_temp, ftplib.error_perm) as error:
            if not offset or not self._session_in_step():
                failure = self._classify(error, command)
                if not failure.session_usable:
                    self._discard()
                raise failure from None
            return self._store_whole(local, path, size, refusal=str(error).strip())
        except Exception as error:
            failure = self._classify(error, command)
            if not failure.session_usable:
                self._discard()
            raise failure from None
        client.data_socket = conn
        self._progress.stored = True  # the server opened `path` for this transfer: its bytes are ours
        if guard is not None and reply_code(probed) in UNSUPPORTED:
            # No SIZE (or MLST) here after all: ask the other way once the transfer is over, not during it.
            if probe == "SIZE":
                self._size_command = False
            else:
                self._mlst_command = False
            self._late_guard = guard
        elif guard is not None:
            try:
                guard.check(self._probed_size(guard.target, probe, probed))
            except TargetExists:
                self._abandon(conn, path)
                raise
        sent = 0
        try:
            with conn:
                sent = self._send(conn, local, offset, size - offset)
                if isinstance(conn, ssl.SSLSocket):
                    conn.unwrap()
        except LocalFileChanged:
            client.data_socket = None
            self._drain_reply()
            raise
        except Exception as error:
            client.data_socket = None
            failure = self._classify(error, command)
            self._discard()
            raise ConnectionLost(failure.reply, command=failure.command) from None
        client.data_socket = None
        try:
            reply = client.voidresp()
        except Exception as error:
            failure = self._classify(error, command)
            if not failure.session_usable:
                self._discard()
            raise failure from None
        self._progress.complete = offset + sent == size
        return offset, sent, reply

    def _session_in_step(self) -> bool:
        return self._client is not None and self._client.sock is not None

    def _store_whole(self, local: BinaryIO, path: str, size: int, refusal: str) -> tuple[int, int, str]:
        """The resumed STOR (or APPE) was refused: send the whole file; once that is accepted, resume no more."""
        log.debug("resuming %s was refused (%s): sending the whole file", path, refusal)
        result = self._store(local, path, 0, size)
        if not self.resumes_refused:
            self.resumes_refused = True
            log.info(
                "%s:%d refuses to resume uploads (%s): cut uploads are sent again whole",
                self.params.host,
                self.params.port,
                refusal,
            )
        return result

    def _abandon(self, conn: socket.socket, path: str) -> None:
        """End a transfer that must not send anything: close its data connection, read the reply, remove `path`."""
        client = self._require()
        client.data_socket = None
        with contextlib.suppress(OSError):
            conn.close()
        self._drain_reply()
        with contextlib.suppress(FtpFailure):  # an empty `.part` left behind harms nothing
            self._command(f"DELE {path}")

    def _drain_reply(self) -> None:
        """Read the reply to a transfer we cut short ourselves, to keep the session in step."""
        client = self._client
        if client is None:
            return
        try:
            client.getresp()
        except ftplib.Error:
            pass
        except Exception:
            self._discard()

    def _send(self, conn: socket.socket, local: BinaryIO, offset: int, count: int) -> int:
        """Send `count` bytes of `local` from `offset`: sendfile on plain sockets, 1 MiB blocks otherwise."""
        chunk = self.params.blocksize
        if self._throttle is not None:
            chunk = min(chunk, self._throttle.chunk_size)
        if self.checksum:
            sent, self.sent_sha256 = send_hashed(
                conn, local, offset, count, chunk, throttle=self._throttle, aborted=self._aborted
            )
            return sent
        zero_copy = self._use_sendfile and not isinstance(conn, ssl.SSLSocket)
        buffer = None if zero_copy else memoryview(bytearray(min(chunk, max(count, 1))))
        local.seek(offset)
        sent = 0
        while sent < count:
            want = min(chunk, count - sent)
            if self._throttle is not None:
                self._throttle.acquire(want, wait=self._aborted.wait)
            if self._aborted.is_set():
                raise ConnectionLost("transfer aborted at the stop deadline")
            if buffer is None:
                got = conn.sendfile(local, offset + sent, want)
            else:
                got = local.readinto(buffer[:want])
                if got:
                    conn.sendall(buffer[:got])
            sent += got
            if got < want:
                raise LocalFileChanged(f"{local.name} shrank to {offset + sent} bytes while it was sent")
        return sent

    def _rename(
        self, source: str, target: str, *, ask_size: bool, next_upload: Callable[[], bool] | None = None
    ) -> tuple[str, str | None]:
        """RNFR/RNTO (with SIZE of the target, and EPSV for the next upload, in the same flight when
        pipelining); returns (RNTO reply, SIZE reply).

        When RNTO is refused, delete an existing target and rename once more.
        """
        size_reply = None
        if self.params.pipelining:
            lines = [f"RNFR {source}", f"RNTO {target}"]
            if ask_size and self._size_command:
                lines.append(f"SIZE {target}")
            client = self._require()
            passive = next_upload is not None and client.passive_ahead is None and next_upload()
            if passive:
                lines.append(client.passive_command)
            replies = self._batch(lines)
            if passive:
                client.take_passive_reply(replies.pop())
            rnfr, rnto = replies[0], replies[1]
            size_reply = replies[2] if len(replies) > 2 else None
            if not rnfr.startswith("3"):
                self._rename_refused(source, reply_error(rnfr), "RNFR")
            if rnto.startswith("2"):
                return rnto, size_reply
            first: FtpFailure = self._classify(reply_error(rnto), "RNTO")
        else:
            try:
                self._command(f"RNFR {source}")
            except FtpFailure as failure:
                self._rename_refused(source, failure, "RNFR")
            try:
                return self._command(f"RNTO {target}"), None
            except FtpFailure as failure:
                first = failure
        if not isinstance(first, PermanentFailure):
            raise first
        try:
            self._command(f"DELE {target}")
        except PermanentFailure:
            raise PermanentFailure(f"rename refused: {first.reply}", command="RNTO") from None
        log.debug("replaced %s: the server would not rename onto an existing file", target)
        try:
            self._command(f"RNFR {source}")
            return self._command(f"RNTO {target}"), None
        except PermanentFailure as failure:
            raise PermanentFailure(f"rename refused: {failure.reply}", command="RNTO") from None

    def _rename_refused(self, source: str, error: BaseException, command: str) -> NoReturn:
        """Raise the right failure for a refused RNFR: transient, vanished temp file, or refused rename."""
        failure = self._classify(error, command)
        if not isinstance(failure, PermanentFailure):
            raise failure
        if reply_code(failure.reply) == 550 and self.can_size and self.remote_size(source) is None:
            raise TransientFailure(f"{source} vanished on the server: {failure.reply}", command=command)
        raise PermanentFailure(f"rename refused: {failure.reply}", command=command)

    def _batch(self, lines: list[str]) -> list[str]:
        client = self._require()
        try:
            return client.batch(lines)
        except Exception as error:
            failure = self._classify(error, lines[0])
            if not failure.session_usable:
                self._discard()
            raise failure from None

    def _verify(self, target: str, size: int, size_reply: str | None = None) -> bool | None:
        """Compare the target's size with `size`; `size_reply` is a SIZE answer already received."""
        remote = self._size_from_reply(target, size_reply) if size_reply is not None else self.remote_size(target)
        if remote is None:
            if self.can_size:
                raise TransientFailure(f"{target} is not on the server after the upload", command="SIZE")
            if not self._warned_unverified:
                self._warned_unverified = True
                log.warning(
                    "%s:%s has neither SIZE nor MLST: uploads are trusted on the server's 226 reply and local"
                    " files are deleted unverified (unless upload.delete_after_upload = false)",
                    self.params.host,
                    self.params.port,
                )
            return None
        if remote != size:
            raise TransientFailure(f"size mismatch: the server has {remote} bytes, local {size}", command="SIZE")
        return True
