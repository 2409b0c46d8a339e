"""Hand items from other threads over to one scheduler, a run of them per scheduled action."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.scheduler import CurrentThreadScheduler

_T = TypeVar("_T")

_NEXT, _ERROR, _COMPLETED = range(3)


def observe_on_in_runs(
    scheduler: abc.SchedulerBase | None = None, max_run: int = 128
) -> Callable[[Observable[_T]], Observable[_T]]:
    """`reactivex.operators.observe_on`, with one scheduled action per run of items instead of one per item.

    Items that arrive while a hand-over is pending join it, and one action on `scheduler` passes
    on up to `max_run` of them in order before it schedules the next (so timers and other work
    on a busy scheduler still get their turns). `observe_on` schedules an action, with its
    scheduled item, disposable and condition notify, for every item: the watch's events and the
    sink's results arrive in bursts from threads of their own. Order, errors and completion are as
    with `observe_on`; after disposal nothing more is passed on. Without `scheduler`, the
    subscriber's (else the current thread's trampoline).

    ::

        -a-(b,c,d)-|      items from another thread; runs of at most 128
        -a-(b,c,d)-|      on `scheduler`: one action for a, one for b, c and d
    """

    def operator(source: Observable[_T]) -> Observable[_T]:
        def subscribe(
            observer: abc.ObserverBase[_T], scheduler_: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            on = scheduler or scheduler_ or CurrentThreadScheduler.singleton()
            hand_over = _HandOver(observer, on, max_run)
            subscription = source.subscribe(
                hand_over.on_next, hand_over.on_error, hand_over.on_completed, scheduler=scheduler_
            )
            return CompositeDisposable(subscription, Disposable(hand_over.dispose))

        return Observable(subscribe)

    return operator


class _HandOver:
    """The items waiting for the scheduler, and whether an action to pass them on is scheduled."""

    def __init__(self, observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase, max_run: int) -> None:
        self.observer = observer
        self.scheduler = scheduler
        self.max_run = max(1, max_run)
        self.waiting: deque[tuple[int, Any]] = deque()
        self.lock = threading.Lock()
        self.scheduled = False
        self.stopped = False  # disposed, or an error or completion passed on (or a failing observer)

    def _add(self, kind: int, value: Any) -> None:
        with self.lock:
            if self.stopped:
                return
            self.waiting.append((kind, value))
            if self.scheduled:
                return
            self.scheduled = True
        self.scheduler.schedule(self._run)

    def on_next(self, value: Any) -> None:
        self._add(_NEXT, value)

    def on_error(self, error: Exception) -> None:
        self._add(_ERROR, error)

    def on_completed(self) -> None:
        self._add(_COMPLETED, None)

    def _run(self, _scheduler: abc.SchedulerBase, _state: Any = None) -> None:
        """Pass on up to `max_run` waiting items; schedule the next run if more are waiting."""
        observer = self.observer
        for _ in range(self.max_run):
            with self.lock:
                if self.stopped or not self.waiting:
                    self.scheduled = False
                    return
                kind, value = self.waiting.popleft()
                if kind != _NEXT:
                    self.stopped = True
                    self.waiting.clear()
            try:
                if kind == _NEXT:
                    observer.on_next(value)
                elif kind == _ERROR:
                    observer.on_error(value)
                else:
                    observer.on_completed()
            except Exception:  # as observe_on: the observer's failure ends the hand-over and reaches the scheduler
                self.dispose()
                raise
        self.scheduler.schedule(self._run)

    def dispose(self) -> None:
        with self.lock:
            self.stopped = True
            self.waiting.clear()
