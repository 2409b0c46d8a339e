"""OriginalApi: the original uploader's methods of `UploadHelper`, and the helpers behind them.

The beemon orchestrator calls these by the original's names (docs/orchestrator.rst); the sink's own
API (`submit`, `stats`, `stop`) and its child are `pipeline.sink.process`. `queue_upload` puts a job
on the sink's queues as a job of the stream's would go; `upload_file` sends one file now over a
session of its own (`UploadSession`, the original facade: temporary name, rename, size check);
`make_directory` and `make_remote_directories` serve the original's folder-making over a caller's
`ftplib.FTP` session. The sink's own uploads never come here.

`UploadHelper` (the parent of `run`) imports this module, but only an orchestrator calls these: so
ftplib, and with it ssl and OpenSSL's libcrypto (some 2 MB of an idle `run`, issue 17), are imported
inside the functions that use them.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
from typing import TYPE_CHECKING, Any

from operators.model import Priority, UploadJob
from operators.remote_path import SENSOR_BY_EXTENSION, remote_name
from pipeline.ftp.params import FtpParams
from pipeline.outbox import deletion as local_files
from pipeline.sink.policy import UploadPolicy

if TYPE_CHECKING:
    import ftplib

    from pipeline.s3.params import S3Params
    from pipeline.sftp.params import SftpParams


class OriginalApi:
    """The original uploader's methods of `UploadHelper` (a mixin: it uses the helper's settings and `submit`)."""

    ftp: FtpParams | SftpParams | S3Params
    policy: UploadPolicy
    outbox: str | None
    station: str

    if TYPE_CHECKING:

        def submit(self, job: UploadJob) -> None: ...

    def queue_upload(self, source_filepath: str, dest_filepath: str, priority: int | None = 0) -> None:
        """The original API: queue `source_filepath` for `dest_filepath`, "the destination directory/file path"
        (absolute, or under the remote root).

        A path ending in "/", or naming a folder that exists on the server, receives the file under
        its own name; any other path is the file's remote name. Priority 0 (or None) goes to the
        primary queue, anything else to the secondary. The file is stat'ed now; one that is missing
        is reported as "gone" by the sink.
        """
        name = remote_name_of(source_filepath)
        into_folder = False
        if dest_filepath.endswith("/"):
            dest_filepath += name
        elif posixpath.basename(dest_filepath) != name:
            into_folder = True  # a folder or another name: the sink asks the server which
        version = local_files.file_version(source_filepath) or (0, 0)
        queue = Priority.LIVE if not priority else Priority.BACKFILL
        self.submit(UploadJob(source_filepath, dest_filepath, version[0], version[1], queue, into_folder=into_folder))

    def upload_file(self, source_filepath: str, dest_filepath: str) -> str | None:
        """The original API: upload one file now, in this process, over a session of its own.

        `dest_filepath` is read as in `queue_upload`. The upload is as safe as the sink's (temporary
        name, rename, size check); the local file is kept (`remove_local_file` removes it).
        Returns None on success, else one line saying what failed (never the password).
        """
        # ftplib, ssl and the session's modules: only where this is called (`run`'s parent never does)
        from pipeline.ftp.errors import FtpFailure, LocalFileChanged, LocalFileGone, scrub
        from pipeline.ftp.session import UploadSession

        try:
            size = os.stat(source_filepath).st_size
        except OSError as error:
            return f"cannot read {source_filepath}: {error.strerror or error}"
        try:
            with UploadSession(self.ftp) as session:
                target = session.target_in_folder(dest_filepath, remote_name_of(source_filepath))
                session.upload(
                    source_filepath,
                    target,
                    size,
                    atomic_rename=self.policy.atomic_rename,
                    verify_size=self.policy.verify_size,
                )
        except LocalFileGone:
            return f"cannot read {source_filepath}: the file is gone"
        except (FtpFailure, LocalFileChanged, OSError) as error:
            return f"upload of {source_filepath} to {dest_filepath} failed: {scrub(str(error), self.ftp.password)}"
        return None

    @staticmethod
    def make_directory(session: ftplib.FTP, directory_name: str) -> str | None:
        """The original API: create one remote folder over an `ftplib.FTP` session (such as the `with` value of
        `UploadSession(username, password, host_ip, host_port, remote_directory)`).

        An existing folder is success. Returns None, or one line saying why it could not be made.
        """
        import ftplib

        try:
            session.mkd(directory_name)
        except ftplib.error_perm as error:
            if _is_folder(session, directory_name):
                return None
            return f"cannot create remote folder {directory_name}: {error}"
        except (ftplib.Error, OSError, EOFError) as error:
            return f"cannot create remote folder {directory_name}: {error or type(error).__name__}"
        return None

    def make_remote_directories(self, session: ftplib.FTP, date: str) -> str | None:
        """The original API: create `<remote root>/<station>/<date>/` and a folder per sensor under it.

        The sensors are the ones the remote-path mapping knows (audio, video, temp) and every
        folder at the top of the outbox (the station's own sensors). Returns None, or the first
        failure as one line.
        """
        if not self.station:
            return "cannot create the remote folders: the station name is not known (give UploadHelper station=...)"
        for folder in day_folders(self.ftp.remote_root, self.station, date, self.outbox):
            error = self.make_directory(session, folder)
            if error is not None:
                return error
        return None

    @staticmethod
    def remove_local_file(filepath: str) -> list[str]:
        """The original API: remove an uploaded file (never a bare .csv; X.csv.final takes X.csv along)."""
        return local_files.remove_local_file(filepath)


def remote_name_of(local_path: str) -> str:
    """The name a file keeps inside a remote folder: its own, with `X.csv.final` delivered as `X.csv`."""
    name = os.path.basename(local_path)
    return remote_name(name) or name


def day_folders(remote_root: str, station: str, date: str, outbox: str | None) -> list[str]:
    """The folders of one station's day, parents first: the remote root's, the station's, the day's, one per sensor.

    The sensors are the ones the remote-path mapping knows and every folder at the top of the outbox.
    """
    root = posixpath.normpath("/" + remote_root.strip("/"))
    day = posixpath.join(root, station, date)
    folders = [posixpath.join(root, station), day]
    folders += [posixpath.join(day, sensor) for sensor in _sensors(outbox)]
    parts = [part for part in root.split("/") if part]
    parents = ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]
    return parents + folders


def _sensors(outbox: str | None) -> list[str]:
    sensors = set(SENSOR_BY_EXTENSION.values())
    if outbox and os.path.isdir(outbox):
        with os.scandir(outbox) as entries:
            sensors |= {e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.name.startswith(".")}
    return sorted(sensors)


def _is_folder(session: ftplib.FTP, path: str) -> bool:
    """Whether `path` is a folder on the server, asked with CWD and undone (the session's folder is the caller's)."""
    import ftplib

    try:
        here = session.pwd()
        session.cwd(path)
    except (ftplib.Error, OSError, EOFError):
        return False
    with contextlib.suppress(ftplib.Error, OSError, EOFError):
        session.cwd(here)
    return True


def polling_interval(interval: object) -> float | None:
    """The original API's polling interval, checked: None, or a positive number."""
    if interval is not None and (isinstance(interval, bool) or not isinstance(interval, int | float)):
        raise TypeError(f"upload_queue_polling_interval_seconds must be a number, not {interval!r}")
    if interval is not None and interval <= 0:
        raise ValueError(f"upload_queue_polling_interval_seconds must be positive, not {interval!r}")
    return interval


def configured_options(config: Any) -> Any:
    """The options of the original API's forms, read as `Uploader(queue, config)` reads them (no embedded server)."""
    from pipeline.app.config_sources import options_from_config

    options = options_from_config(config, caller="UploadHelper()")
    if options.embedded:
        raise ValueError(
            'UploadHelper(): ftp.host = "embedded" names the built-in test server, which only Uploader and'
            " beemon-uploader run start: name a real server"
        )
    return options
