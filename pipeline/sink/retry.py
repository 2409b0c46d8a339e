"""When next? The one answer for everything the uploader tries again, and when it stops trying.

- a failed job waits on the board: full jitter over `retry_base`..`retry_max`, a parked one `retry_max`
  (`RetryPolicy.job_delay`);
- a failed connect waits its worker's `Backoff`, a refused login `retry_max` (`RetryPolicy.connect_delay`),
  and that wait is also the pool's pause after a 421;
- `run --once` gives up on reaching the server after `connect_attempts` failed connects in a row, on one
  schedule shared by the workers (`ConnectAttempts`), and on a file after `max_retries` failed attempts
  after the first, or at once when it is parked (`once_gives_up`);
- a worker that met an unforeseen error pauses `retry_base` (`RetryPolicy.after_worker_error`), a pipeline
  whose sink process died is built again after `retry_base`, doubling up to `retry_max`
  (`RetryPolicy.rebuild_pauses`); the session pool grows back one slot every `retry_max`.

Full jitter (a uniform draw between 0 and the exponential cap) spreads out many stations, or many
jobs, that failed at the same moment, so they do not all hit the server again in step.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.sink.model import Outcome

if TYPE_CHECKING:
    from pipeline.sink.policy import UploadPolicy

#: Pipelines in a row that fail (their sink died, their stream stopped) without a single delivery
#: before `run` gives up and exits 1: the sink cannot work at all, and only a person or the
#: supervisor's restart can change that. A failure after a delivery starts the count again.
FRUITLESS_REBUILDS = 5


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


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Every retry delay, from the policy's `retry_base` and `retry_max` (`cap`)."""

    base: float
    cap: float
    rand: Callable[[], float] = random.random

    @classmethod
    def of(cls, policy: UploadPolicy) -> RetryPolicy:
        return cls(policy.retry_base, policy.retry_max)

    def job_delay(self, failures: int, outcome: Outcome) -> float:
        """How long a job waits after its `failures`-th failed attempt in a row.

        A parked job (the server refuses it) waits the cap: asking sooner would not change the answer.
        """
        if outcome == Outcome.PARKED:
            return self.cap
        return full_jitter(failures, self.base, self.cap, self.rand)

    def backoff(self) -> Backoff:
        """A fresh count of failed connects (one per worker, one shared by `ConnectAttempts`)."""
        return Backoff(self.base, self.cap, self.rand)

    def connect_delay(self, backoff: Backoff, *, login_refused: bool = False) -> float:
        """Count one more failed connect on `backoff`; the wait before the next one.

        A refused login waits the cap at once: it will not fix itself sooner.
        """
        delay = backoff.next_delay()
        return self.cap if login_refused else delay

    @property
    def after_worker_error(self) -> float:
        """The pause of a worker after an error nobody foresaw (a bug), before it connects again."""
        return self.base

    @property
    def regrow_seconds(self) -> float:
        """How often a pool shrunk by 421 replies tries one more session."""
        return self.cap

    @staticmethod
    def gives_up_rebuilding(fruitless: int) -> bool:
        """Whether `fruitless` pipelines in a row that failed without delivering a file are enough to stop
        rebuilding: then the process exits non-zero so that its supervisor (systemd) acts and says so."""
        return fruitless >= FRUITLESS_REBUILDS

    def rebuild_pauses(self) -> Iterator[float]:
        """The pauses before building a pipeline again after its sink died: base, doubling, up to the cap."""
        pause = self.base
        while True:
            yield pause
            pause = min(pause * 2, self.cap)


class ConnectAttempts:
    """`UploadPolicy.connect_attempts` (run --once): failed connects in a row, shared by all workers,
    waited out on one backoff schedule; the sink gives up once `limit` failed (0: never)."""

    def __init__(self, limit: int, retry: RetryPolicy) -> None:
        self.limit = limit
        self.failures = 0
        self._backoff = retry.backoff()
        self._lock = threading.Lock()

    def failed(self) -> int:
        """Count one more failed connect; how many failed in a row now."""
        with self._lock:
            self.failures += 1
            return self.failures

    def exhausted(self, failures: int) -> bool:
        return bool(self.limit) and failures >= self.limit

    def next_delay(self) -> float:
        with self._lock:
            return self._backoff.next_delay()

    def connected(self) -> None:
        with self._lock:
            self.failures = 0
            self._backoff.reset()


def connect_attempts_for(max_retries: int) -> int:
    """`run --once --max-retries N`: the first connect and N more."""
    return max_retries + 1


def once_gives_up(failures: int, outcome: Outcome, max_retries: int) -> bool:
    """Whether `run --once` stops waiting for a file: it is parked, or its first try and `max_retries` more failed."""
    return failures > max_retries or outcome == Outcome.PARKED
