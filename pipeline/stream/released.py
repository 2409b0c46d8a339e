"""`Released`: the paths the sink is done with, passed to the stream (its dedupe) as the sink reports them.

A `reactivex.subject.Subject` did this. Its `on_next` passes through `check_disposed`, `Observer.on_next`
and `_on_next_core` before it reaches a subscriber: three Python calls more for every delivered file,
in the thread that reads the sink's reports. This observable hands each path straight to its
subscribers (reactivex wraps each as for any observable: `AutoDetachObserver`), in order, in the
caller's thread. It never completes nor fails; a subscription's disposal ends its deliveries.
"""

from __future__ import annotations

import threading
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import Disposable


class Released(Observable[str]):
    """The paths the sink is done with: `on_next(path)` tells every subscriber at once."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()  # subscriptions come and go on the stream's thread, paths on the reports'
        self._observers: tuple[abc.ObserverBase[str], ...] = ()  # replaced, never changed: read without the lock

    def _subscribe_core(self, observer: abc.ObserverBase[str], scheduler: abc.SchedulerBase | None = None) -> Any:
        with self._lock:
            self._observers = (*self._observers, observer)
        return Disposable(lambda: self._forget(observer))

    def _forget(self, observer: abc.ObserverBase[str]) -> None:
        with self._lock:
            self._observers = tuple(each for each in self._observers if each is not observer)

    def on_next(self, path: str) -> None:
        for observer in self._observers:
            observer.on_next(path)
