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
    """One path waiting to go quiet: its last event, and when it may be emitted."""

    event: FileEvent
    due: datetime


def debounce_per_path(
    duetime: float,
    scheduler: abc.SchedulerBase | None = None,
    *,
    ends: Callable[[FileEvent], bool] | None = None,
) -> Callable[[Observable[FileEvent]], Observable[FileEvent]]:
    """Emit a path's last event once that path has been quiet for `duetime` seconds.

    `ends`: the events that only end a path's wait, never emitted (a deletion, when what follows
    drops deletions anyway): such an event drops the path's pending event at once. The outcome is
    that of a filter after the operator that drops those events.

    Paths never delay each other; a path's state is released when it goes quiet (memory follows
    the paths active right now, not the paths ever seen). On completion every pending path is
    emitted at once, in the order of their last events; an error drops them.

    One timer for all pending paths: they are kept in the order of their due times (an event
    moves its path to the end, since its due time is now the latest), and the timer is armed for
    the first; when it fires it emits every path that is due and sleeps until the next. So an
    event costs a dict update, not a timer (nor, as with `group_by_until` + `debounce`, a group
    and subscriptions): the stream sees every Created, Modified, Closed and Deleted of a busy
    outbox, and a burst of new files shares its timers. The order assumes a clock that does not
    step back (the stream's loop is timed by `time.monotonic`); on one that does, a path waits at
    most until the one ahead of it is due.

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
    """One subscription's pending paths (in the order of their due times) and its timer; every method holds the lock."""

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
        self.timer: abc.DisposableBase | None = None
        self.lock = threading.RLock()

    def _drop_timer(self) -> None:
        if self.timer is not None:
            self.timer.dispose()
            self.timer = None
        self.pending.clear()

    def _expire(self, _scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        """Emit every path that is due, in order; then sleep until the next one is."""
        with self.lock:
            self.timer = None
            now = self.clock.now
            while self.pending:
                path = next(iter(self.pending))
                entry = self.pending[path]
                if entry.due > now:
                    self.timer = self.clock.schedule_relative(entry.due - now, self._expire)
                    return
                del self.pending[path]
                self.observer.on_next(entry.event)

    def on_next(self, event: FileEvent) -> None:
        with self.lock:
            self.pending.pop(event.path, None)  # (a path that stays pending moves to the end: it is due last now)
            if self.ends is not None and self.ends(event):
                return
            self.pending[event.path] = _Quiet(event, self.clock.now + self.quiet)
            if self.timer is None:
                self.timer = self.clock.schedule_relative(self.quiet, self._expire)

    def on_error(self, error: Exception) -> None:
        with self.lock:
            self._drop_timer()
            self.observer.on_error(error)

    def on_completed(self) -> None:
        with self.lock:
            flushed = [entry.event for entry in self.pending.values()]
            self._drop_timer()
            for event in flushed:
                self.observer.on_next(event)
            self.observer.on_completed()

    def dispose(self) -> None:
        with self.lock:
            self._drop_timer()
