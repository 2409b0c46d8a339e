"""One token bucket shared by every upload session of the sink: the total rate stays under the limit.

A sender asks for the bytes of its next chunk before sending it. The bucket lends: it subtracts the
chunk even when that leaves it in debt and tells the caller how long to sleep the debt off, so
concurrent senders queue up fairly without a polling loop, and the long-run rate is the limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: The bucket holds this much time's worth of bytes: short bursts are allowed, long ones are not.
BURST_SECONDS = 0.25
MIN_BURST_BYTES = 4096


class TokenBucket:
    """`rate` bytes per second; `capacity` the largest burst (defaults to a quarter second's worth)."""

    def __init__(self, rate: float, capacity: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(rate * BURST_SECONDS, MIN_BURST_BYTES))
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    @property
    def chunk_size(self) -> int:
        """The size of chunk a sender should ask for: at most one burst, so the rate stays smooth."""
        return max(1, int(self.capacity))

    def reserve(self, count: int) -> float:
        """Take `count` bytes' worth of tokens; return the seconds to wait before sending them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= count
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def acquire(self, count: int, wait: Callable[[float], object] = time.sleep) -> None:
        """Block until `count` bytes may be sent. `wait` may be an event's wait, to be interruptible."""
        delay = self.reserve(count)
        if delay > 0:
            wait(delay)
