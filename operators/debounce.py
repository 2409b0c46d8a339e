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
    duetime: float,
    scheduler: abc.SchedulerBase | None = None,
    *,
    ends: Callable[[FileEvent], bool] | None = None,
) -> Callable[[Observable[FileEvent]], Observable[FileEvent]]:
    """Emit a path's last event once that path has been quiet for `duetime` seconds.

    `ends`: the events that only end a path's wait, never emitted (a deletion, when what follows
    drops deletions anyway): such an event drops the path's pending event and its timer at once,
    and one for a path that is not pending costs a dict lookup, not a timer. The outcome is that
    of a filter after the operator that drops those events; a busy outbox deletes as many files as
    it uploads, so this spares one timer per uploaded file.

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

        -a-d-b-d-----|      duetime 3, ends: d
        -------------|
    """
    quiet = timedelta(seconds=duetime)

    def operator(source: Observable[FileEvent]) -> Observable[FileEvent]:
        def subscribe(
            observer: abc.ObserverBase[FileEvent], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            state = _Debounce(observer, scheduler or scheduler_ or TimeoutScheduler.singleton(), quiet, ends)
            subscription = source.subscribe(state.on_next, state.on_error, state.on_completed, scheduler=scheduler_)
            return CompositeDisposable(subscription, Disposable(state.dispose))

        return Observable(subscribe)

    return operator


class _Debounce:
    """One subscription's pending paths and their timers; every method holds the lock."""

    def __init__(
        self,
        observer: abc.ObserverBase[FileEvent],
        clock: abc.SchedulerBase,
        quiet: timedelta,
        ends: Callable[[FileEvent], bool] | None = None,
    ) -> None:
        self.observer = observer
        self.clock = clock
        self.quiet = quiet
        self.ends = ends
        self.pending: dict[str, _Quiet] = {}
        self.lock = threading.RLock()

    def _drop_timers(self) -> None:
        for entry in self.pending.values():
            if entry.timer is not None:
                entry.timer.dispose()
        self.pending.clear()

    def _timer_for(self, path: str) -> Callable[[abc.SchedulerBase, Any], None]:
        def expire(_scheduler: abc.SchedulerBase, _state: Any = None) -> None:
            with self.lock:
                entry = self.pending.get(path)
                if entry is None:
                    return
                rest = (entry.due - self.clock.now).total_seconds()
                if rest > 0:  # events came meanwhile: sleep for the rest of the quiet period
                    entry.timer = self.clock.schedule_relative(rest, expire)
                    return
                del self.pending[path]
                self.observer.on_next(entry.event)

        return expire

    def on_next(self, event: FileEvent) -> None:
        with self.lock:
            if self.ends is not None and self.ends(event):
                ended = self.pending.pop(event.path, None)
                if ended is not None and ended.timer is not None:
                    ended.timer.dispose()
                return
            due = self.clock.now + self.quiet
            entry = self.pending.get(event.path)
            if entry is not None:
                entry.event, entry.due = event, due
                return
            entry = self.pending[event.path] = _Quiet(event, due)
            entry.timer = self.clock.schedule_relative(self.quiet, self._timer_for(event.path))

    def on_error(self, error: Exception) -> None:
        with self.lock:
            self._drop_timers()
            self.observer.on_error(error)

    def on_completed(self) -> None:
        with self.lock:
            flushed = [entry.event for entry in self.pending.values()]
            self._drop_timers()
            for event in flushed:
                self.observer.on_next(event)
            self.observer.on_completed()

    def dispose(self) -> None:
        with self.lock:
            self._drop_timers()
