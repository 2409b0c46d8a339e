"""`run --once`'s last round of manifests: every pending day goes up before the run ends, or is named.

When the parent has no more files for the sink it asks for this round (`Manifests.finish`). Every day
whose journal holds lines the server's manifest lacks (or a past day whose manifest was not read back
yet) is due at once; a failed put is tried again on a file's schedule (`RetryPolicy.job_delay`: full
jitter from `retry_base`, doubling, capped by `retry_max`) until the run's attempts are spent (the
first and `--max-retries` more). Once no pending day is left to try, the round is settled: the days
given up, each with its last failure, go to the parent, and their journals stay for the next run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.sink.model import Outcome
from pipeline.sink.retry import RetryPolicy


@dataclass
class LastRound:
    """The attempts of each day's manifest in the round, the days given up, and whom to tell when it is settled."""

    attempts: int
    retry: RetryPolicy
    on_settled: Callable[[dict[str, str]], None]
    left: dict[str, str] = field(default_factory=dict)  # day -> its last failure, once its attempts are spent
    settled: bool = False

    def failed(self, day: str, failures: int, reason: str, now: float) -> float:
        """After the `failures`-th failed put of `day`'s manifest in a row in this run (those before the round count
        too, as a file's do): when to try it again (infinity: given up, `left` says why)."""
        if failures >= self.attempts:
            self.left[day] = reason
            return math.inf
        return now + self.retry.job_delay(failures, Outcome.RETRY)

    def settle(self, pending: list[str]) -> dict[str, str] | None:
        """The days left (day -> why), once, when every `pending` day was given up (or none is pending); else None."""
        if self.settled or any(day not in self.left for day in pending):
            return None
        self.settled = True
        return {day: self.left[day] for day in pending}
