"""One session's worth kept for live work: the board's rule for what backlog a free session may take.

At most `backlog_sessions` (one less than the sessions) long backlog transfers run at once, so a
recording made while the backlog fills the link finds a session free, and the backlog senders then
pause for it (`transport.bandwidth.LiveFirst`). The spare session takes backlog only when no live job
waits, and only short files (`short_bytes`, a tenth of a second on the link) that it finishes before a
live job would notice. Chosen over preempting a backlog transfer (abort it, resume it later) because
it sends no byte twice and needs no resume support from the server; on a full link the backlog's
throughput is the same with one session less (docs/benchmarks.md has both figures).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from operators.model import Priority
from pipeline.sink.ticket import Ticket

#: How far into the backlog queue the spare session looks for a short file (a long queue is not scanned whole).
SHORT_LOOKAHEAD = 64
#: A short backlog file: at most this long on the link at the configured rate, and at most `SHORT_BYTES`.
SHORT_SECONDS = 0.1
SHORT_BYTES = 256 * 1024


def short_backlog_bytes(rate: float) -> int:
    """The largest backlog file the session kept for live work may take (`rate` bytes/s, 0 when unknown)."""
    return SHORT_BYTES if rate <= 0 else min(SHORT_BYTES, int(rate * SHORT_SECONDS))


@dataclass(frozen=True, slots=True)
class LiveReserve:
    """`backlog_sessions` long backlog transfers at most (None: no limit); `short_bytes` what is short."""

    backlog_sessions: int | None = None
    short_bytes: int = 0

    @classmethod
    def of(cls, connections: int, rate: float) -> LiveReserve:
        """One of `connections` kept for live work (none with a single session), at `rate` bytes/s (0: unknown)."""
        return cls(connections - 1 if connections > 1 else None, short_backlog_bytes(rate))

    def short(self, ticket: Ticket) -> bool:
        return ticket.job.size <= self.short_bytes

    def full(self, in_flight: Collection[Ticket]) -> bool:
        """Whether the long backlog transfers in flight hold every session but the one kept for live work.

        A long backlog transfer holds its session for long: a backlog job, not short, its bytes not all sent
        yet. (Counted in one loop, no call per ticket: asked at every take of a backlog job.)
        """
        needed = self.backlog_sessions
        if needed is None or len(in_flight) < needed:
            return False
        long_ones = 0
        for ticket in in_flight:
            job, progress = ticket.job, ticket.progress
            if (
                job.priority != Priority.LIVE
                and job.size > self.short_bytes
                and (progress is None or not progress.complete)
            ):
                long_ones += 1
        return long_ones >= needed
