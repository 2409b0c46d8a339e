"""Debounce per path: a burst of events for one file becomes its last event, once the file is quiet."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import TimeoutScheduler

from operators.model import FileEvent


@dataclass(slots=True)
class _Quiet:
    """One path waiting to go quiet: its last event, when it may be emitted, and its timer."""

    event: FileEvent
    due: datetime
    timer: abc.DisposableBase | None = None


def debounce_per_path(
    duetime: float, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[FileEvent]], Observable[FileEvent]]:
    """Emit a path's last event once that path has been quiet for `duetime` seconds.

    Paths never delay each other; a path's state is released when it goes quiet (memory follows
    the paths active right now, not the paths ever seen). On completion every pending path is
    emitted at once, in the order the paths first became pending; an error drops them.

    One timer per pending path, re-armed lazily: a new event only moves the path's due time, and
    a timer that fires early sleeps again for the rest. So a burst costs a dict update per event,
    not a timer (nor, as with `group_by_until` + `debounce`, a group and subscriptions) per event:
    the stream sees every Created, Modified, Closed and Deleted of a busy outbox.

    ::

        -a-a-b-a-----|      duetime 3
        -------b-a---|
    """
    quiet = timedelta(seconds=duetime)

    def operator(source: Observable[FileEvent]) -> Observable[FileEvent]:
        def subscribe(
            observer: abc.ObserverBase[FileEvent], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            clock = scheduler or scheduler_ or TimeoutScheduler.singleton()
            pending: dict[str, _Quiet] = {}
            lock = threading.RLock()

            def drop_timers() -> None:
                for entry in pending.values():
                    if entry.timer is not None:
                        entry.timer.dispose()
                pending.clear()

            def timer_for(path: str) -> Callable[[abc.SchedulerBase, Any], None]:
                def expire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
                    with lock:
                        entry = pending.get(path)
                        if entry is None:
                            return
                        rest = (entry.due - clock.now).total_seconds()
                        if rest > 0:  # events came meanwhile: sleep for the rest of the quiet period
                            entry.timer = clock.schedule_relative(rest, expire)
                            return
                        del pending[path]
                        observer.on_next(entry.event)

                return expire

            def on_next(event: FileEvent) -> None:
                with lock:
                    due = clock.now + quiet
                    entry = pending.get(event.path)
                    if entry is not None:
                        entry.event, entry.due = event, due
                        return
                    entry = pending[event.path] = _Quiet(event, due)
                    entry.timer = clock.schedule_relative(quiet, timer_for(event.path))

            def on_error(error: Exception) -> None:
                with lock:
                    drop_timers()
                    observer.on_error(error)

            def on_completed() -> None:
                with lock:
                    flushed = [entry.event for entry in pending.values()]
                    drop_timers()
                    for event in flushed:
                        observer.on_next(event)
                    observer.on_completed()

            def dispose() -> None:
                with lock:
                    drop_timers()

            subscription = source.subscribe(on_next, on_error, on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, Disposable(dispose))

        return Observable(subscribe)

    return operator
