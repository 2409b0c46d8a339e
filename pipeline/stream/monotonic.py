"""A scheduler whose clock is the monotonic one: quiet periods and timers that a wall clock step cannot stretch.

reactivex's schedulers read the wall clock (`datetime.now`): an NTP correction or a Pi setting its
clock at boot, stepped back an hour during a debounce, would hold that file back an hour. The
stream's loop runs on this instead; file ages (an mtime against now) stay on the wall clock, the
only clock an mtime is on.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from reactivex.scheduler import EventLoopScheduler

_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def monotonic_now() -> datetime:
    """`time.monotonic()` as a datetime (a fixed origin plus the seconds): only differences mean anything."""
    return _ORIGIN + timedelta(seconds=time.monotonic())


class MonotonicEventLoopScheduler(EventLoopScheduler):
    """An `EventLoopScheduler` (one thread, one action at a time) timed by `time.monotonic`."""

    @property
    def now(self) -> datetime:
        return monotonic_now()
