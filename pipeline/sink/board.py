"""JobBoard: the sink's in-memory queues, shared by its worker threads.

Two ready queues, primary (live) and secondary (backfill): a worker takes from the primary while it
has anything. A path is on the board at most once: a newer job for a queued path replaces the old
one in place; a job for a path in flight is kept as its follow-up and decided on when the attempt
ends. Failed jobs wait out their own backoff beside the queues (never blocking other jobs); parked
ones wait `retry_max` (`pipeline.sink.waiting_jobs`). Idle workers block on one condition variable:
no polling. A worker without a session takes `cold`: only what no idle connected worker is waiting
for, so sessions open on demand, when the open ones are all busy. One session's worth is kept for
live work (`LiveReserve`).

The board also keeps the `PartRecords` (`board.parts`): whose bytes each remote path's `.part`
holds, so a later attempt resumes only its own version, and what this process renamed where.

Two local files can map to one remote path (`audio/hive1/N.wav` and `audio/hive2/N.wav`). A remote
path is reserved while a job for it is in flight, so the other waits in its queue (it never shares
the `.part`), and the board remembers which source file this process last placed under each remote
name (`PartRecords.may_replace`), so the sink's overwrite guard can tell its own earlier copy from another file.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from operators.model import UploadJob
from pipeline.sink.live_reserve import SHORT_LOOKAHEAD, LiveReserve
from pipeline.sink.model import BOARD_COUNTS, Outcome, SinkCounters
from pipeline.sink.part_records import PartRecords
from pipeline.sink.retry import RetryPolicy
from pipeline.sink.ticket import Ticket, merge, queue_index, same_version
from pipeline.sink.waiting_jobs import WaitingJobs


class JobBoard:
    """Ready queues, waiting (backoff/parked) jobs and jobs in flight, keyed by local path."""

    def __init__(
        self,
        retry_base: float,
        retry_max: float,
        counters: SinkCounters | None = None,
        clock: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] | None = None,
        placed_memory: int = 10_000,
        reserve: LiveReserve | None = None,
    ) -> None:
        self.retry = RetryPolicy(retry_base, retry_max, rand) if rand else RetryPolicy(retry_base, retry_max)
        self._counters = counters
        self._published: tuple[int, ...] | None = None  # the counts last handed to `counters`
        self._clock = clock
        self._lock = threading.RLock()  # (held directly: a `with` on the condition is two Python calls more)
        self._cond = threading.Condition(self._lock)
        self.nudges = 0  # `nudge` calls: a waiting `take` returns when it changes
        self._ready: tuple[OrderedDict[str, Ticket], OrderedDict[str, Ticket]] = (OrderedDict(), OrderedDict())
        self._waiting = WaitingJobs(clock, self._make_ready)
        self._in_flight: dict[str, Ticket] = {}
        self._follow_ups: dict[str, UploadJob] = {}
        #: whose bytes each remote path's `.part` holds, and what this process renamed onto each name
        self.parts = PartRecords(placed_memory)
        #: remote path -> local path of the job in flight for it
        self._reserved: dict[str, str] = {}
        #: reserved remote paths that a ready job waits for
        self._contended: set[str] = set()
        self._closed = False
        #: workers waiting in `take`: with a session (warm) and without one (cold)
        self._warm_waiting = 0
        self._cold_waiting = 0
        self._reserve = reserve or LiveReserve()

    # --- producers

    def put(self, job: UploadJob) -> None:
        """Queue `job`, replacing any job for the same path (see the module docstring)."""
        with self._lock:
            ready = self._put(job)
            self._publish()
            if ready:
                self._wake()

    def put_many(self, jobs: list[UploadJob]) -> None:
        """`put` each of `jobs`, in order, in one hold of the board and one change of its counts (the jobs that
        came up the parent's pipe in one write)."""
        with self._lock:
            ready = 0
            for job in jobs:
                ready += self._put(job)
            self._publish()
            if ready:
                self._wake(ready)

    def _put(self, job: UploadJob) -> bool:
        """`put`'s change of the board, the counts not handed over; True when a job became ready (a taker to wake)."""
        path = job.local_path
        if path in self._in_flight:
            earlier = self._follow_ups.get(path)
            self._follow_ups[path] = merge(earlier, job) if earlier else job
            return False
        for index, queue in enumerate(self._ready):
            ticket = queue.get(path)
            if ticket is None:
                continue
            ticket.job = merge(ticket.job, job)
            if queue_index(ticket.job.priority) != index:
                del queue[path]
                self._ready[0][path] = ticket
            return False
        ticket = self._waiting.tickets.get(path)
        if ticket is not None:
            if same_version(ticket.job, job):  # a rescan found it again: keep its backoff
                ticket.job = merge(ticket.job, job)
                return False
            self._waiting.remove(path)  # the file changed: try the new version now
            ticket.job, ticket.failures, ticket.parked = merge(ticket.job, job), 0, False
            self._make_ready(ticket, publish=False)
        else:
            self._make_ready(Ticket(job), publish=False)
        return True

    def nudge(self) -> None:
        """Have every `take` waiting now return None: its worker has other work (`run --once`'s manifests)."""
        with self._lock:
            self.nudges += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Stop handing out jobs: every `take` returns None from now on (what is queued stays on disk)."""
        with self._lock:
            self._closed = True
            self._cond.notify_all()

    # --- workers

    def take(self, timeout: float | None = None, *, cold: bool = False, nudges: int | None = None) -> Ticket | None:
        """The next ready job (primary first), or None after `timeout` seconds idle or once closed.

        `cold`: the taker has no session yet; it gets a job only while no warm taker is waiting
        (an open session that is idle takes it sooner than a new one could log in).
        """
        with self._lock:
            deadline = None if timeout is None else self._clock() + timeout
            nudges = self.nudges if nudges is None else nudges  # (the caller's count: a nudge since returns at once)
            while not self._closed and self.nudges == nudges:
                now = self._clock()
                if self._waiting.release_due(now) > 1:
                    self._cond.notify_all()  # the other idle workers may sleep past the due time otherwise
                ticket = None if cold and self._warm_waiting else self._take_ready()
                if ticket is not None:
                    if not cold and self._cold_waiting and not self._warm_waiting:
                        self._cond.notify_all()  # what is left is for a new session now
                    return ticket
                if deadline is not None and now >= deadline:
                    return None
                wait = None if deadline is None else deadline - now
                due = self._waiting.next_due()
                if due is not None:
                    wait = due - now if wait is None else min(wait, due - now)
                self._wait_in_take(wait, cold)
            return None

    def _take_ready(self) -> Ticket | None:
        for index, queue in enumerate(self._ready):
            if not queue:
                continue
            ticket = self._first_free(queue, short_only=index == 1 and self._reserve.full(self._in_flight.values()))
            if ticket is not None:
                job = ticket.job
                del queue[job.local_path]
                ticket.attempts += 1
                ticket.reserved = job.remote_path
                self._reserved[job.remote_path] = job.local_path
                self._in_flight[job.local_path] = ticket
                self._publish()
                return ticket
        return None

    def _wait_in_take(self, wait: float | None, cold: bool) -> None:
        if cold:
            self._cold_waiting += 1
        else:
            self._warm_waiting += 1
        try:
            self._cond.wait(wait)
        finally:
            if cold:
                self._cold_waiting -= 1
            else:
                self._warm_waiting -= 1
                if not self._warm_waiting and self._cold_waiting:
                    self._cond.notify_all()  # cold takers may take now

    def untake(self, ticket: Ticket) -> None:
        """Give back a job taken but never attempted (its worker lost its session first): first in its queue again."""
        with self._lock:
            path = ticket.path
            if self._in_flight.pop(path, None) is None:
                return
            waiting = self._release(ticket)
            ticket.attempts -= 1
            follow_up = self._follow_ups.pop(path, None)
            if follow_up is not None:
                ticket.job = merge(ticket.job, follow_up)
            queue = self._ready[queue_index(ticket.job.priority)]
            queue[path] = ticket
            queue.move_to_end(path, last=False)
            self._publish()
            self._wake(1 + waiting)

    @property
    def counters(self) -> SinkCounters | None:
        """Where the board's counts go (None: nowhere)."""
        return self._counters

    def finish(
        self, ticket: Ticket, outcome: Outcome, job: UploadJob | None = None, counted: tuple[str, ...] = ()
    ) -> float:
        """Record how `ticket`'s attempt ended; returns the seconds it now waits (0 when ready or done).

        `job` is the file's new state for `changed` (queued again at once). `counted`: counts of `counters`
        that this attempt adds one to (`delivered`, how it was verified), changed with the board's in one go.
        """
        with self._lock:
            delay, waiting = self._finish(ticket, outcome, job)
            self._publish(counted)
            self._wake(1 + waiting)  # and the job that waited for this remote path, if any
            return delay

    def finish_many(self, delivered: list[Ticket], counted: tuple[str, ...] = ()) -> None:
        """`finish` for several attempts that all ended `delivered` (a lean run's files settled together): one
        hold of the board, and one change of the counts for all of them (`counted`: every count they add one
        to, once per attempt: a name twice adds two)."""
        with self._lock:
            woken = 0
            for ticket in delivered:
                woken += 1 + self._finish(ticket, Outcome.DELIVERED, None)[1]
            self._publish(counted)
            self._wake(woken)

    def _finish(self, ticket: Ticket, outcome: Outcome, job: UploadJob | None) -> tuple[float, int]:
        """`finish`'s change of the board, without the counts handed over nor the wake-up: (the delay, 1 when a
        ready job waited for its remote path, else 0)."""
        path = ticket.path
        self._in_flight.pop(path, None)
        waiting = self._release(ticket)
        progress, ticket.progress = ticket.progress, None
        self.parts.record(ticket.job, progress, outcome)
        follow_up = self._follow_ups.pop(path, None)
        delay = 0.0
        if outcome in (Outcome.DELIVERED, Outcome.GONE):
            if follow_up is not None and (outcome == Outcome.GONE or not same_version(follow_up, ticket.job)):
                self._make_ready(Ticket(follow_up), publish=False)
        elif outcome == Outcome.CHANGED:
            newest = job or ticket.job
            ticket.job = merge(follow_up, newest) if follow_up else newest
            self._make_ready(ticket, publish=False)
        elif follow_up is not None and not same_version(follow_up, ticket.job):
            ticket.job, ticket.failures, ticket.parked = merge(ticket.job, follow_up), 0, False
            self._make_ready(ticket, publish=False)
        else:
            if follow_up is not None:
                ticket.job = merge(ticket.job, follow_up)
            ticket.failures += 1
            ticket.parked = outcome == Outcome.PARKED
            delay = self.retry.job_delay(ticket.failures, outcome)
            self._waiting.add(ticket, delay)
        return delay, waiting

    def in_flight(self, ticket: Ticket) -> bool:
        """Whether `ticket`'s attempt is still open (taken and not finished)."""
        with self._lock:
            return self._in_flight.get(ticket.path) is ticket

    # --- inspection

    def remote_paths(self) -> list[str]:
        """The remote path of every job on the board (ready, waiting, in flight, following): what is not drained."""
        with self._lock:
            tickets = [*self._ready[0].values(), *self._ready[1].values(), *self._waiting.tickets.values()]
            tickets += self._in_flight.values()
            return [ticket.job.remote_path for ticket in tickets] + [j.remote_path for j in self._follow_ups.values()]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return self._counts()

    def _counts(self) -> dict[str, int]:
        return dict(zip(BOARD_COUNTS, self._count_tuple(), strict=True))

    def _count_tuple(self) -> tuple[int, ...]:
        """The counts of `BOARD_COUNTS`, in its order."""
        waiting = self._waiting
        return (len(self._ready[0]), len(self._ready[1]), len(waiting.tickets), waiting.parked, len(self._in_flight))

    # --- internals (called with the condition held)

    def _wake(self, n: int = 1) -> None:
        """Wake `n` takers; all of them while cold ones wait (one woken at random may be the wrong kind)."""
        if self._cold_waiting:
            self._cond.notify_all()
        elif self._warm_waiting:  # (the only waits on the condition are `take`'s: none, nobody to wake)
            self._cond.notify(n)

    def _release(self, ticket: Ticket) -> int:
        """Free the ticket's remote path; 1 when a ready job was waiting for it, else 0."""
        remote, ticket.reserved = ticket.reserved, ""
        if not remote or self._reserved.get(remote) != ticket.path:
            return 0
        del self._reserved[remote]
        if remote in self._contended:
            self._contended.discard(remote)
            return 1
        return 0

    def _first_free(self, queue: OrderedDict[str, Ticket], short_only: bool = False) -> Ticket | None:
        """The first job whose remote path is not in flight: one for a path in flight waits its turn.
        `short_only`: the first short one among the first `SHORT_LOOKAHEAD` (the spare session's)."""
        for looked, ticket in enumerate(queue.values()):
            if short_only and looked >= SHORT_LOOKAHEAD:
                return None
            if short_only and not self._reserve.short(ticket):
                continue
            remote = ticket.job.remote_path
            if remote not in self._reserved:
                return ticket
            self._contended.add(remote)
        return None

    def _make_ready(self, ticket: Ticket, publish: bool = True) -> None:
        """Queue `ticket`; `publish` False: the caller hands the counts over itself, once its change is done."""
        self._ready[queue_index(ticket.job.priority)][ticket.path] = ticket
        if publish:
            self._publish()

    def _publish(self, counted: tuple[str, ...] = ()) -> None:
        """Hand the counts to `counters` when they changed (or with `counted`, see `finish`): one change a turn."""
        if self._counters is None:
            return
        counts = self._count_tuple()
        if counted or counts != self._published:
            self._published = counts
            self._counters.set_board(counts, *counted)
