"""What the sink process tells its parent: one `UploadResult` per attempt, and its live counts.

Both travel up the sink's pipe to the parent (`pipeline.sink.channels`), results for logs,
statistics and the stream's dedupe release. The child keeps its counts (`SinkStats`) in a
`SinkCounters`; each change sends a snapshot after what is already on its way up (a burst of changes
becomes one snapshot), so the parent, which keeps the last one, never sees a result before the
counts it changed. No shared memory: a locked shared array needs a named semaphore, and that a
resource tracker process (`pipeline.sink.launch`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import Any, NamedTuple, SupportsIndex


class Outcome(StrEnum):
    """How one attempt ended. `delivered` and `gone` are final; the others mean "still waiting"."""

    DELIVERED = "delivered"  # verified on the server (and deleted locally when the policy says so)
    RETRY = "retry"  # a transient failure: the job waits its backoff, then goes again
    PARKED = "parked"  # the server refuses this file: retried every `retry_max` seconds
    GONE = "gone"  # the local file vanished before it could be sent: nothing to do
    CHANGED = "changed"  # the local file changed while it was sent: kept, queued again at once

    def __reduce_ex__(self, protocol: SupportsIndex) -> str:
        """Pickled by its name (`Outcome.DELIVERED`), found by pickle itself on the way back: by its value (the enum's
        default) unpickling calls the class, two Python calls in the parent for every result of the sink."""
        return _PICKLED_NAMES[self._name_]

    @property
    def final(self) -> bool:
        """The file no longer waits: it was delivered, or it is gone from the outbox."""
        return self in (Outcome.DELIVERED, Outcome.GONE)

    @property
    def failed(self) -> bool:
        """What every "failed" count counts: an attempt that ended with its file still waiting
        (retry, parked, changed). A file that vanished did not fail; there is nothing left to send."""
        return not self.final


#: What `Outcome.__reduce_ex__` gives: a member's qualified name in its module.
_PICKLED_NAMES = {outcome.name: f"{Outcome.__qualname__}.{outcome.name}" for outcome in Outcome}


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

    def __reduce__(self) -> tuple[type[UploadResult], tuple[Any, ...]]:
        """Pickled as its fields in order (one per attempt crosses to the parent; see `UploadJob.__reduce__`)."""
        return (UploadResult, _RESULT_FIELDS(self))


class SinkStats(NamedTuple):
    """A snapshot of the sink: ready jobs per queue, jobs waiting a retry (of which parked), in flight,
    open sessions, and totals since start: attempts delivered and failed (`Outcome.failed`, as
    `UploadStats` counts them), `received_secondary`, backfill jobs taken off the inter-process
    queue, which tells the parent how many are still on their way, and how deliveries were checked.

    A named tuple, not a frozen dataclass: one is made and pickled with every write of the sink's reports, and
    read in the parent (a frozen dataclass sets each of its twelve fields through `object.__setattr__`, about
    ten times the cost of making the tuple)."""

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


_FIELDS = SinkStats._fields
_new_stats = tuple.__new__
_RESULT_FIELDS = attrgetter(*(f.name for f in fields(UploadResult)))
#: The board's counts (`JobBoard`), in this order, the first fields of `SinkStats` (`SinkCounters.set_board`).
BOARD_COUNTS = ("queued_primary", "queued_secondary", "waiting", "parked", "in_flight")
if _FIELDS[: len(BOARD_COUNTS)] != BOARD_COUNTS:
    raise ImportError("SinkStats must begin with the board's counts, in the order of BOARD_COUNTS")
#: the other counts: index in `SinkCounters._totals`
_TOTAL = {name: index for index, name in enumerate(_FIELDS[len(BOARD_COUNTS) :])}


class SinkCounters:
    """`SinkStats` as the child keeps them (its threads write under one lock); `on_change` hears of every change.

    A delivered file changes several counts at once (the board's, `delivered`, how it was verified): they
    change together, in one call (`set_board`), so `on_change` is heard once for them. The board's counts are
    kept as the tuple the board hands over (no per-name bookkeeping for them).
    """

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        self._board: tuple[int, ...] = (0,) * len(BOARD_COUNTS)
        self._totals = [0] * len(_TOTAL)
        self._lock = threading.Lock()
        self.on_change = on_change

    def snapshot(self) -> SinkStats:
        with self._lock:
            return _new_stats(SinkStats, (*self._board, *self._totals))

    def set(self, **values: int) -> None:
        with self._lock:
            before = (self._board, list(self._totals))
            for name, value in values.items():
                index = _TOTAL.get(name)
                if index is not None:
                    self._totals[index] = value
                else:
                    board = list(self._board)
                    board[BOARD_COUNTS.index(name)] = value
                    self._board = tuple(board)
            changed = before != (self._board, self._totals)
        if changed and self.on_change is not None:
            self.on_change()

    def set_board(self, counts: tuple[int, ...], *added: str) -> None:
        """The board's counts now (`BOARD_COUNTS`, in order; the board tells only changed ones), and 1 more of
        each count in `added`: one change."""
        with self._lock:
            self._board = counts
            for name in added:
                self._totals[_TOTAL[name]] += 1
        if self.on_change is not None:
            self.on_change()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._totals[_TOTAL[name]] += amount
        if self.on_change is not None:
            self.on_change()
