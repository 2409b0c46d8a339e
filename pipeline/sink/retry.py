"""Exponential backoff with full jitter: how long to wait before the next reconnect or retry.

Full jitter (a uniform draw between 0 and the exponential cap) spreads out many stations, or many
jobs, that failed at the same moment, so they do not all hit the server again in step.
"""

from __future__ import annotations

import random
from collections.abc import Callable


def full_jitter(failures: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """The delay after `failures` consecutive failures (1 for the first).

    Uniform in [0, min(cap, base * 2 ** (failures - 1))]; 0 when nothing failed.
    """
    if failures <= 0:
        return 0.0
    ceiling = cap if failures > 64 else min(cap, base * 2.0 ** (failures - 1))
    return rand() * ceiling


class Backoff:
    """Counts consecutive failures and turns them into delays; `reset()` on success."""

    def __init__(self, base: float, cap: float, rand: Callable[[], float] = random.random) -> None:
        self.base = base
        self.cap = cap
        self.failures = 0
        self._rand = rand

    def next_delay(self) -> float:
        """Record one more failure and return how long to wait before trying again."""
        self.failures += 1
        return full_jitter(self.failures, self.base, self.cap, self._rand)

    def reset(self) -> None:
        self.failures = 0
