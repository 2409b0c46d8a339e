"""What the sink process tells its parent: one `UploadResult` per attempt, and live counts in shared memory.

Results travel on the results queue given to `UploadHelper` (for logs, statistics and the stream's
dedupe release). Counts (`SinkStats`) live in a small shared-memory array the child updates as its
queues change, so the parent reads them at any moment without a message round trip.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from multiprocessing.context import BaseContext
from typing import Any


class Outcome(StrEnum):
    """How one attempt ended. `delivered` and `gone` are final; the others mean "still waiting"."""

    DELIVERED = "delivered"  # verified on the server (and deleted locally when the policy says so)
    RETRY = "retry"  # a transient failure: the job waits its backoff, then goes again
    PARKED = "parked"  # the server refuses this file: retried every `retry_max` seconds
    GONE = "gone"  # the local file vanished before it could be sent: nothing to do
    CHANGED = "changed"  # the local file changed while it was sent: kept, queued again at once

    @property
    def final(self) -> bool:
        """The file no longer waits: it was delivered, or it is gone from the outbox."""
        return self in (Outcome.DELIVERED, Outcome.GONE)

    @property
    def failed(self) -> bool:
        """What every "failed" count counts: an attempt that ended with its file still waiting
        (retry, parked, changed). A file that vanished did not fail; there is nothing left to send."""
        return not self.final


@dataclass(frozen=True, slots=True)
class UploadResult:
    """One finished or failed attempt. `reply` is the server's last reply line or the error's text
    (never a password); `bytes` what this attempt sent; `attempt` counts from 1 per file."""

    local_path: str
    remote_path: str
    bytes: int
    seconds: float
    attempt: int
    outcome: Outcome
    reply: str


@dataclass(frozen=True, slots=True)
class SinkStats:
    """A snapshot of the sink: ready jobs per queue, jobs waiting a retry (of which parked), in flight,
    open sessions, and totals since start: attempts delivered and failed (`Outcome.failed`, as
    `UploadStats` counts them), `received_secondary`, backfill jobs taken off the inter-process
    queue, which tells the parent how many are still on their way, and how deliveries were checked."""

    queued_primary: int = 0
    queued_secondary: int = 0
    waiting: int = 0
    parked: int = 0
    in_flight: int = 0
    sessions: int = 0
    delivered: int = 0
    failed: int = 0
    received_secondary: int = 0
    #: deliveries checked by the server's SHA-256, by size; copies the server hashed differently (sent again)
    verified_hash: int = 0
    verified_size: int = 0
    hash_mismatches: int = 0


@dataclass(frozen=True, slots=True)
class SinkGaveUp:
    """The sink stopped trying to reach the server (`UploadPolicy.connect_attempts`): `reason` is one
    line for the user, what failed and what to check (never a password)."""

    reason: str


_FIELDS = tuple(f.name for f in fields(SinkStats))


class SinkCounters:
    """`SinkStats` in a shared-memory array: the child writes, the parent reads, both under its lock."""

    def __init__(self, context: BaseContext) -> None:
        self._array: Any = context.Array("q", len(_FIELDS), lock=True)

    def snapshot(self) -> SinkStats:
        with self._array.get_lock():
            return SinkStats(*self._array[:])

    def set(self, **values: int) -> None:
        with self._array.get_lock():
            for name, value in values.items():
                self._array[_FIELDS.index(name)] = value

    def add(self, name: str, amount: int = 1) -> None:
        with self._array.get_lock():
            self._array[_FIELDS.index(name)] += amount
