"""UploadSession: the original uploader's session API over `FtpTransport`, one logged-in FTP(S) session.

The protocol itself lives in the modules it names: `connection` (login, commands, TLS),
`directories` (folders made once), `sizes` (SIZE/MLST), `store` and `delivery` (`.part` -> rename
-> verify), `features` (what the server supports). This module keeps the names and behaviour the
beemon orchestrator and this project's own callers know: the two constructors, `with`, `upload`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

from pipeline.ftp.client import FtpClient
from pipeline.ftp.params import FtpParams
from pipeline.ftp.transport import FtpTransport
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress
from pipeline.transport.naming import NAME_MAX, temp_name

__all__ = ["NAME_MAX", "UploadProgress", "UploadReport", "UploadSession", "temp_name"]

#: The names this module used before the transport seam: the same types.
UploadReport = Delivered
UploadProgress = DeliveryProgress


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


class UploadSession(FtpTransport):
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
        super().__init__(params, throttle=throttle, use_sendfile=use_sendfile, aborted=aborted)

    @classmethod
    def original(
        cls, username: str, password: str, host_ip: str, host_port: int, remote_directory: str
    ) -> UploadSession:
        """The original API's constructor arguments, plain FTP (the same as calling the class with them)."""
        return cls(username, password, host_ip, host_port, remote_directory)

    def __enter__(self) -> Any:
        """This session; for one built the original way, its `ftplib.FTP` connection in `remote_directory`."""
        if not self.connected:
            self.connect()
        if not self._original:
            return self
        try:
            self.make_remote_directories(self.connection.root)
            self.connection.command(f"CWD {self.connection.root}")
        except BaseException:
            self.close()
            raise
        return self.connection.client

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the connection

    @property
    def welcome(self) -> str:
        return self.connection.welcome

    @property
    def client(self) -> FtpClient | None:
        """The logged-in ftplib connection, None when closed."""
        return self.connection.client

    @property
    def last_data_session_reused(self) -> bool | None:
        """Whether the last TLS data connection resumed the control connection's TLS session."""
        client = self.connection.client
        return client.last_data_session_reused if client else None

    @property
    def resumes_refused(self) -> bool:
        """The server refused a resumed STOR and took the whole file instead: whole files from now on."""
        return self.features.resumes_refused

    def drop_passive(self) -> None:
        """Close a passive port asked for ahead (`upload`'s `next_upload`) that no transfer used."""
        self.connection.drop_passive()

    def noop(self) -> str:
        """Keep an idle session alive (servers drop silent ones)."""
        return self.connection.noop()

    def delete(self, remote_path: str) -> str:
        """DELE one remote file (absolute, or relative to the root)."""
        return self.connection.command(f"DELE {self.absolute(remote_path)}")

    def absolute(self, remote_path: str) -> str:
        """A remote path made absolute: relative paths are taken under `remote_root`."""
        return self.connection.absolute(remote_path)

    # --- folders and sizes

    def make_directory(self, name: str) -> bool:
        """Create one remote directory unless it exists; True when this call created it (see `Directories`)."""
        return self.directories.make_directory(name)

    def make_remote_directories(self, remote_dir: str) -> bool:
        """Make `remote_dir` and any missing parents, once per session; True when `remote_dir` is new."""
        return self.directories.make_remote_directories(remote_dir)

    def is_directory(self, remote_path: str) -> bool:
        """Whether `remote_path` is an existing folder on the server (known, or one CWD to tell)."""
        return self.directories.is_directory(remote_path)

    def forget_directories(self, path: str) -> None:
        """Drop `path` and its parents from the folder cache (the server lost them behind the session's back)."""
        self.directories.forget(path)

    def remote_size(self, path: str) -> int | None:
        """The size of a remote file (SIZE, else MLST), None when it does not exist or the server cannot tell."""
        return self.sizes.size(path)

    @property
    def can_size(self) -> bool:
        """Whether this server can tell a file's size (SIZE or MLST) as far as the session knows."""
        return self.features.can_size

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
        name holds the whole file (checked by size unless the server cannot tell). The arguments
        are `Delivery`'s (see `pipeline.ftp.delivery` for the protocol); a caller that passed
        `next_upload` and then does not upload calls `drop_passive`. `progress`, when given, is
        filled in as the upload goes (read it after a failure too).
        """
        delivery = Delivery(
            local_path,
            remote_path,
            size,
            resume=resume,
            part_complete=part_complete,
            atomic_rename=atomic_rename,
            verify_size=verify_size,
            next_upload=next_upload,
            may_replace=may_replace,
        )
        return self.deliver(delivery, progress if progress is not None else UploadProgress())
