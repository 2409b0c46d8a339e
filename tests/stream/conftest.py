"""Fixtures for the stream tests: a subscriber that records and disposes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reactivex import Observable

from tests.helpers import wait_until


class Recorder:
    """Records a subscription's items (thread-safe), its errors and its completion."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Any] = []
        self.errors: list[Exception] = []
        self.completed = threading.Event()
        self.disposable: Any = None

    def on_next(self, item: Any) -> None:
        with self._lock:
            self._items.append(item)

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_completed(self) -> None:
        self.completed.set()

    @property
    def items(self) -> list[Any]:
        with self._lock:
            return list(self._items)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least `count` items came; return them all."""
        wait_until(lambda: len(self.items) >= count or self.errors, timeout)
        assert not self.errors, self.errors
        return self.items

    def dispose(self) -> None:
        if self.disposable is not None:
            self.disposable.dispose()
            self.disposable = None


@pytest.fixture
def record() -> Iterator[Callable[[Observable[Any]], Recorder]]:
    """Subscribe a `Recorder` to an observable; every subscription is disposed at teardown."""
    recorders: list[Recorder] = []

    def subscribe(observable: Observable[Any]) -> Recorder:
        recorder = Recorder()
        recorder.disposable = observable.subscribe(recorder.on_next, recorder.on_error, recorder.on_completed)
        recorders.append(recorder)
        return recorder

    yield subscribe
    for recorder in recorders:
        recorder.dispose()


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """An empty outbox (named apart from the shared `outbox` fixture, which this suite does not rely on)."""
    path = tmp_path / "box"
    path.mkdir()
    return path
