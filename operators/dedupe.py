"""De-duplicate upload jobs: one job per file version and priority until the sink is done with the file."""

from __future__ import annotations

import threading
from collections.abc import Callable

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable

from operators.model import UploadJob


def dedupe_jobs(
    released: Observable[str] | None = None,
) -> Callable[[Observable[UploadJob]], Observable[UploadJob]]:
    """Suppress a job whose file version (local path, size, mtime) was already emitted, at the same or a
    more urgent priority, and not released.

    A rescan while the file is still queued or uploading gives no job; a file changed after its job
    gives a new one. A live job for a version emitted as backfill passes once: it is what promotes
    the file to the sink's primary queue (the sink keeps one entry per path, so it is never sent
    twice), whichever of the scan and the watcher saw the file first. `released` carries the
    local paths the sink is done with (delivered, or gone): the path is forgotten, so a later event
    makes a job again, and the state stays as small as the set of files in flight. An error on
    `released` ends the stream; its completion just stops the forgetting.

    ::

        jobs:     -A-a-a-A-b-a'-a'--a'-|     A = a found by the backfill, a' = a with another size
        released: ---------------x------  x = a's path
        result:   -A-a-----b-a'-----a'-|
    """

    def operator(source: Observable[UploadJob]) -> Observable[UploadJob]:
        def subscribe(
            observer: abc.ObserverBase[UploadJob], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            emitted: dict[str, tuple[int, int, int]] = {}  # path -> (size, mtime_ns, priority) emitted
            lock = threading.Lock()  # `released` may arrive on another thread than the jobs

            def on_job(job: UploadJob) -> None:
                with lock:
                    earlier = emitted.get(job.local_path)
                    if earlier is not None and earlier[:2] == (job.size, job.mtime_ns) and earlier[2] <= job.priority:
                        return
                    emitted[job.local_path] = (job.size, job.mtime_ns, job.priority)
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
