"""Is a part of the uploader making progress? A beat counter it bumps, and a watch on that counter.

The stream's event loop bumps a `Beat` from a periodic action on that loop; the sink process
bumps its `pipeline.sink.heartbeat.Heartbeat`. `Progress` turns a counter into "moved within the
last `stale_after` seconds", which decides whether systemd's watchdog is fed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: A part that did not beat for this long is not making progress (beats come every second).
STALE_AFTER_SECONDS = 5.0


class Beat:
    """A counter bumped by one thread, read by another (an int under the GIL: no lock needed)."""

    def __init__(self) -> None:
        self.count = 0

    def beat(self, *_: object) -> None:
        self.count += 1

    def beats(self) -> int:
        return self.count


class Progress:
    """Watches `read()`; `stale()` after it stayed the same for `stale_after` seconds."""

    def __init__(self, read: Callable[[], int], stale_after: float = STALE_AFTER_SECONDS) -> None:
        self._read = read
        self.stale_after = stale_after
        self._value = read()
        self._moved_at = time.monotonic()

    def stale(self) -> bool:
        value = self._read()
        now = time.monotonic()
        if value != self._value:
            self._value, self._moved_at = value, now
        return now - self._moved_at > self.stale_after

    def quiet_for(self) -> float:
        return time.monotonic() - self._moved_at
