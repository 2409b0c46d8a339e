"""Ready file events become upload jobs (`job_mapping.job_for`: a stat plus the remote-path mapping).

The stat is the caller's (`stat=`): operators touch no file system themselves, so the stream
passes `pipeline.outbox.file_state.finished_file_stat` and the tests a fake disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reactivex import Observable, abc
from reactivex import operators as ops

from operators.job_mapping import StatFn, job_for
from operators.model import FileEvent, UploadJob
from operators.readiness import ready_rule


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


def ready_upload_jobs(
    ignore_patterns: Sequence[str] = (),
    *,
    outbox: str,
    remote_root: str,
    station: str,
    stat: StatFn,
    polling: bool = False,
    watched: bool = False,
) -> Callable[[Observable[FileEvent]], Observable[UploadJob]]:
    """`ready_files(ignore_patterns, root=outbox, polling=polling)` then `to_upload_jobs(outbox, ...)`, as one operator.

    The same jobs, errors and completion, at the same times; one observer per event instead of
    three (a filter, a map and a filter): the stream maps every finished file through it. An
    exception in the rule, the stat or the mapping goes to `on_error`, as in those operators.
    `watched`: the events come from `watched_files(ignore_patterns, root=outbox)` (the live chain),
    whose check of each path is not made again (`ready_rule`'s `watched`).

    ::

        -c-m-d-g-|      c closed, m modified, d deleted, g closed but gone
        -C-------|      C = c's job
    """
    ready = ready_rule(ignore_patterns, outbox, polling=polling, watched=watched)

    def operator(source: Observable[FileEvent]) -> Observable[UploadJob]:
        def subscribe(
            observer: abc.ObserverBase[UploadJob], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(event: FileEvent) -> None:
                try:
                    if not ready(event):
                        return
                    job = job_for(event, outbox=outbox, remote_root=remote_root, station=station, stat=stat)
                except Exception as error:
                    observer.on_error(error)
                    return
                if job is not None:
                    observer.on_next(job)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator
