"""Ready files become upload jobs: a stat of the file plus the remote-path mapping."""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Callable

from reactivex import Observable
from reactivex import operators as ops

from operators.model import FileEvent, UploadJob
from operators.ready_files import parts_below
from operators.remote_path import remote_path_for

StatFn = Callable[[str], os.stat_result | None]


def regular_file_stat(path: str) -> os.stat_result | None:
    """The file's `lstat`, or None if it is gone or not a regular file (a symlink is never followed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat_module.S_ISREG(st.st_mode) else None


def job_for(
    event: FileEvent, *, outbox: str, remote_root: str, station: str, stat: StatFn = regular_file_stat
) -> UploadJob | None:
    """The job for a ready file, or None if it vanished, lies outside the outbox or maps to no remote name."""
    st = stat(event.path)
    if st is None:
        return None
    parts = parts_below(event.path, outbox)
    if parts is None:
        return None
    remote = remote_path_for("/".join(parts), remote_root=remote_root, station=station, mtime=st.st_mtime)
    if remote is None:
        return None
    return UploadJob(event.path, remote, st.st_size, st.st_mtime_ns, event.priority)


def to_upload_jobs(
    outbox: str, *, remote_root: str, station: str, stat: StatFn = regular_file_stat
) -> Callable[[Observable[FileEvent]], Observable[UploadJob]]:
    """Map each ready file event to its `UploadJob`; files that vanished meanwhile are skipped silently.

    The size and mtime are taken now, after the debounce, so they describe the finished file.
    """

    def make(event: FileEvent) -> UploadJob | None:
        return job_for(event, outbox=outbox, remote_root=remote_root, station=station, stat=stat)

    def operator(source: Observable[FileEvent]) -> Observable[UploadJob]:
        return source.pipe(ops.map(make), ops.filter(lambda job: job is not None))  # type: ignore[return-value]

    return operator
