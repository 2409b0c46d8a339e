"""Running figures of an uploader: what is queued, in flight, delivered and failed, and how fast.

Fed by the composition root (jobs submitted, results and sink counts received); read by the
periodic statistics line and the Prometheus endpoint, so both always show the same numbers.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from operators.model import Priority, UploadJob
from pipeline.sink.model import Outcome

#: `Outcome.DELIVERED` and the final outcomes (`Outcome.final`) as plain names: asked for every result, and an
#: enum member looked up on its class costs more than the comparison.
DELIVERED = Outcome.DELIVERED
FINAL = tuple(outcome for outcome in Outcome if outcome.final)


@dataclass(frozen=True, slots=True)
class Snapshot:
    queued_primary: int
    queued_secondary: int
    in_flight: int
    delivered: int
    failed: int
    bytes_delivered: int
    rate_bytes_per_second: float
    oldest_waiting_seconds: float
    verified_hash: int = 0
    verified_size: int = 0
    hash_mismatches: int = 0

    def line(self) -> str:
        """The statistics line of the log."""
        return (
            f"queued {self.queued_primary} live + {self.queued_secondary} backfill, in flight {self.in_flight}, "
            f"delivered {self.delivered}, failed {self.failed}, {format_bytes(self.bytes_delivered)}, "
            f"{format_bytes(self.rate_bytes_per_second)}/s, oldest waiting {self.oldest_waiting_seconds:.0f} s, "
            f"verified by hash {self.verified_hash} / by size {self.verified_size}, "
            f"hash mismatches {self.hash_mismatches}"
        )


def format_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(count) < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    return f"{count:.1f} GB"


class UploadStats:
    """Thread-safe counters; the rate is over the last `window` seconds of deliveries."""

    def __init__(self, window: float = 60.0) -> None:
        #: The sink's live counts (`UploadHelper.stats`), when a sink runs: queues and flight come from it.
        self.sink: Callable[[], Any] | None = None
        self._lock = threading.Lock()
        self._window = window
        self._waiting: dict[str, tuple[int, Priority]] = {}
        self._recent: deque[tuple[float, int]] = deque()
        self.delivered = 0
        self.failed = 0
        self.bytes_delivered = 0

    def submitted(self, job: UploadJob) -> None:
        with self._lock:
            self._waiting[job.local_path] = (job.mtime_ns, job.priority)

    def finished(self, local_path: str, outcome: Outcome, size: int) -> None:
        """One attempt ended; a delivered or vanished file stops waiting."""
        final = outcome in FINAL
        with self._lock:
            if outcome == DELIVERED:
                self.delivered += 1
                self.bytes_delivered += size
                self._recent.append((time.monotonic(), size))
            elif not final:  # `Outcome.failed`
                self.failed += 1
            if final:
                self._waiting.pop(local_path, None)

    def oldest_waiting(self) -> tuple[str, float] | None:
        """The file waiting longest (by its modification time) and its age in seconds, or None."""
        with self._lock:
            if not self._waiting:
                return None
            path, (mtime_ns, _) = min(self._waiting.items(), key=lambda item: item[1][0])
        return path, max(0.0, time.time() - mtime_ns / 1e9)

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            while self._recent and self._recent[0][0] < now - self._window:
                self._recent.popleft()
            span = min(self._window, max(now - self._recent[0][0], 1.0)) if self._recent else 1.0
            rate = sum(size for _, size in self._recent) / span
            primary = sum(1 for _, priority in self._waiting.values() if priority == Priority.LIVE)
            oldest_ns = min((mtime for mtime, _ in self._waiting.values()), default=None)
            oldest = max(0.0, time.time() - oldest_ns / 1e9) if oldest_ns is not None else 0.0
            secondary, in_flight = len(self._waiting) - primary, 0  # in flight: only the sink knows
        checks = (0, 0, 0)
        if self.sink is not None:
            counts = self.sink()
            primary, secondary = counts.queued_primary, counts.queued_secondary + counts.waiting
            in_flight = counts.in_flight
            checks = (counts.verified_hash, counts.verified_size, counts.hash_mismatches)
        with self._lock:
            return Snapshot(
                queued_primary=primary,
                queued_secondary=secondary,
                in_flight=in_flight,
                delivered=self.delivered,
                failed=self.failed,
                bytes_delivered=self.bytes_delivered,
                rate_bytes_per_second=rate,
                oldest_waiting_seconds=oldest,
                verified_hash=checks[0],
                verified_size=checks[1],
                hash_mismatches=checks[2],
            )
