"""De-duplicate upload jobs: one job per file version until the sink is done with the file."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from operators.model import UploadJob


def dedupe_jobs(
    released: Observable[str] | None = None,
) -> Callable[[Observable[UploadJob]], Observable[UploadJob]]:
    """Suppress a job whose file version (local path, size, mtime) was already emitted and not released.

    The backfill and a live event for the same file, or a rescan while the file is still queued or
    uploading, give one job; a file changed after its job gives a new one. `released` carries the
    local paths the sink is done with (delivered, or gone): the path is forgotten, so a later event
    makes a job again, and the state stays as small as the set of files in flight. An error on
    `released` ends the stream; its completion just stops the forgetting.

    ::

        jobs:     -a-a-b-a'-a--a-|     a' = a with another size
        released: ---------x---------  x = a's path
        result:   -a---b-a'----a-|
    """

    def operator(source: Observable[UploadJob]) -> Observable[UploadJob]:
        def subscribe(
            observer: abc.ObserverBase[UploadJob], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            emitted: dict[str, tuple[int, int]] = {}
            lock = threading.Lock()  # `released` may arrive on another thread than the jobs

            def on_job(job: UploadJob) -> None:
                version = (job.size, job.mtime_ns)
                with lock:
                    if emitted.get(job.local_path) == version:
                        return
                    emitted[job.local_path] = version
                observer.on_next(job)

            def on_released(path: str) -> None:
                with lock:
                    emitted.pop(path, None)

            subscriptions = CompositeDisposable()
            if released is not None:
                subscriptions.add(released.subscribe(on_released, observer.on_error, scheduler=scheduler))
            subscriptions.add(source.subscribe(on_job, observer.on_error, observer.on_completed, scheduler=scheduler))
            return subscriptions

        return Observable(subscribe)

    return operator
