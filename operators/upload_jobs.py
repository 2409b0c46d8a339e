"""Ready file events become upload jobs (`job_mapping.job_for`: a stat plus the remote-path mapping).

The stat is the caller's (`stat=`): operators touch no file system themselves, so the stream
passes `pipeline.outbox.file_state.finished_file_stat` and the tests a fake disk.
"""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable
from reactivex import operators as ops

from operators.job_mapping import StatFn, job_for
from operators.model import FileEvent, UploadJob


def to_upload_jobs(
    outbox: str, *, remote_root: str, station: str, stat: StatFn
) -> Callable[[Observable[FileEvent]], Observable[UploadJob]]:
    """Map each ready file event to its `UploadJob`; files that vanished meanwhile are skipped silently.

    The size and mtime are taken now, after the debounce, so they describe the finished file.
    """

    def make(event: FileEvent) -> UploadJob | None:
        return job_for(event, outbox=outbox, remote_root=remote_root, station=station, stat=stat)

    def operator(source: Observable[FileEvent]) -> Observable[UploadJob]:
        return source.pipe(ops.map(make), ops.filter(lambda job: job is not None))  # type: ignore[return-value]

    return operator
