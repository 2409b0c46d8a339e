"""WaitingJobs: the board's jobs waiting out a backoff (after a failure) or `retry_max` (parked).

Apart from the board's ready queues because it keeps its own order, by time: a heap of due times,
one timer per wait, so that a waiting job never blocks the queues and an idle worker sleeps exactly
until the first one is due. A timer made stale (the job was taken out early, or waits anew) is
skipped when it comes up. No lock of its own: the board calls it with its condition held.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from pipeline.sink.ticket import Ticket


class WaitingJobs:
    """Tickets by local path, each until its `due` time; `parked` counts those waiting `retry_max`."""

    def __init__(self, clock: Callable[[], float], on_due: Callable[[Ticket], None]) -> None:
        self.tickets: dict[str, Ticket] = {}
        self.parked = 0
        self._clock = clock
        #: what to do with a ticket whose time has come (the board queues it again)
        self._on_due = on_due
        self._timers: list[tuple[float, int, str]] = []
        self._sequence = 0

    def add(self, ticket: Ticket, delay: float) -> None:
        """Let `ticket` wait `delay` seconds from now."""
        ticket.due = self._clock() + delay
        self.tickets[ticket.path] = ticket
        self.parked += ticket.parked
        self._sequence += 1
        heapq.heappush(self._timers, (ticket.due, self._sequence, ticket.path))

    def remove(self, path: str) -> Ticket:
        """Take `path`'s ticket out before its time (its timer goes stale)."""
        ticket = self.tickets.pop(path)
        self.parked -= ticket.parked
        return ticket

    def release_due(self, now: float) -> int:
        """Hand every ticket whose time has come to `on_due` (stale timers are skipped); how many."""
        released = 0
        timers = self._timers
        while timers and timers[0][0] <= now:
            due, _, path = heapq.heappop(timers)
            ticket = self.tickets.get(path)
            if ticket is not None and ticket.due == due:
                self._on_due(self.remove(path))
                released += 1
        return released

    def next_due(self) -> float | None:
        """When the first timer comes up (after `release_due`, a time in the future), or None without one."""
        return self._timers[0][0] if self._timers else None
