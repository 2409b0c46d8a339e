"""SIGTERM and SIGINT during `run --once`: they set a stop event that the run's waits look at.

Kept apart from the run's logic: the handler only logs and sets the event (`Event.is_set`, which the
run polls, takes no lock, so a signal landing anywhere cannot deadlock the main thread), and the
previous handlers come back when the block ends, so a caller in the same process (the original
API's users, tests) keeps its own.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger("beemon.once")


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` for the block (in the main thread only), then the old handlers come back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.warning("received %s: stopping (what is not delivered stays in the outbox)", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
