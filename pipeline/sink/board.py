"""JobBoard: the sink's in-memory queues, shared by its worker threads.

Two ready queues, primary (live) and secondary (backfill): a worker takes from the primary while it
has anything. A path is on the board at most once: a newer job for a queued path replaces the old
one in place; a job for a path in flight is kept as its follow-up and decided on when the attempt
ends. Failed jobs wait out their own backoff beside the queues (never blocking other jobs); parked
ones wait `retry_max`. Idle workers block on one condition variable: no polling. A worker without
a session takes `cold`: only what no idle connected worker is waiting for, so sessions open on
demand, when the open ones are all busy.

The board also remembers, per remote path, which job's bytes this process last sent into its
`.part` on the server (from each attempt's `DeliveryProgress`): a later attempt resumes only a `.part`
that holds the beginning of its own version, never one another job (or another process) wrote,
and a job parked with its whole file in the `.part` (a refused rename) tries only the rename again.

Two local files can map to one remote path (`audio/hive1/N.wav` and `audio/hive2/N.wav`). A remote
path is reserved while a job for it is in flight, so the other waits in its queue (it never shares
the `.part`), and the board remembers which source file this process last placed under each remote
name (`may_replace`), so the sink's overwrite guard can tell its own earlier copy from another file.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from operators.file_rules import delivered_file, is_final
from operators.model import Priority, UploadJob
from pipeline.sink.model import Outcome, SinkCounters
from pipeline.sink.retry import full_jitter

if TYPE_CHECKING:
    from pipeline.transport.base import DeliveryProgress


@dataclass(eq=False, slots=True)
class Entry:
    """One path's life on the board: its current job and its history of attempts."""

    job: UploadJob
    attempts: int = 0
    failures: int = 0
    parked: bool = False
    due: float = 0.0
    #: what the attempt in flight did on the server, filled in by the session as it goes
    progress: DeliveryProgress | None = None
    #: the remote path this entry holds reserved while in flight
    reserved: str = ""

    @property
    def path(self) -> str:
        return self.job.local_path


def _queue_index(priority: int) -> int:
    """The original's rule: priority 0 is the primary queue, anything else the secondary."""
    return 0 if priority == Priority.LIVE else 1


def _version(job: UploadJob) -> tuple[str, int, int]:
    return job.local_path, job.size, job.mtime_ns


def _same_version(a: UploadJob, b: UploadJob) -> bool:
    return (a.remote_path, a.size, a.mtime_ns) == (b.remote_path, b.size, b.mtime_ns)


def _merge(old: UploadJob, new: UploadJob) -> UploadJob:
    """The newer job, at the more urgent of the two priorities (a live file never drops to backfill)."""
    priority = Priority(min(_queue_index(old.priority), _queue_index(new.priority)))
    return new if _queue_index(new.priority) == priority else replace(new, priority=priority)


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
    ) -> None:
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._counters = counters
        self._clock = clock
        self._rand = rand or random.random
        self._cond = threading.Condition()
        self._ready: tuple[OrderedDict[str, Entry], OrderedDict[str, Entry]] = (OrderedDict(), OrderedDict())
        self._waiting: dict[str, Entry] = {}
        self._parked = 0
        self._timers: list[tuple[float, int, str]] = []
        self._sequence = 0
        self._in_flight: dict[str, Entry] = {}
        self._follow_ups: dict[str, UploadJob] = {}
        #: remote path -> ((local path, size, mtime_ns) whose STOR last wrote that path's `.part`, all of it?)
        self._parts: dict[str, tuple[tuple[str, int, int], bool]] = {}
        #: remote path -> local path of the job in flight for it
        self._reserved: dict[str, str] = {}
        #: reserved remote paths that a ready job waits for
        self._contended: set[str] = set()
        #: remote path -> the source file this process last renamed onto it (the newest `placed_memory`)
        self._placed: OrderedDict[str, str] = OrderedDict()
        self.placed_memory = placed_memory
        self._closed = False
        #: workers waiting in `take`: with a session (warm) and without one (cold)
        self._warm_waiting = 0
        self._cold_waiting = 0

    # --- producers

    def put(self, job: UploadJob) -> None:
        """Queue `job`, replacing any job for the same path (see the module docstring)."""
        with self._cond:
            path = job.local_path
            if path in self._in_flight:
                earlier = self._follow_ups.get(path)
                self._follow_ups[path] = _merge(earlier, job) if earlier else job
                return
            for index, queue in enumerate(self._ready):
                entry = queue.get(path)
                if entry is None:
                    continue
                entry.job = _merge(entry.job, job)
                if _queue_index(entry.job.priority) != index:
                    del queue[path]
                    self._ready[0][path] = entry
                self._publish()
                return
            entry = self._waiting.get(path)
            if entry is not None:
                if _same_version(entry.job, job):  # a rescan found it again: keep its backoff
                    entry.job = _merge(entry.job, job)
                    return
                self._unwait(path)  # the file changed: try the new version now
                entry.job, entry.failures, entry.parked = _merge(entry.job, job), 0, False
                self._make_ready(entry)
            else:
                self._make_ready(Entry(job))
            self._wake()

    def close(self) -> None:
        """Stop handing out jobs: every `take` returns None from now on (what is queued stays on disk)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # --- workers

    def take(self, timeout: float | None = None, *, cold: bool = False) -> Entry | None:
        """The next ready job (primary first), or None after `timeout` seconds idle or once closed.

        `cold`: the taker has no session yet; it gets a job only while no warm taker is waiting
        (an open session that is idle takes it sooner than a new one could log in).
        """
        with self._cond:
            deadline = None if timeout is None else self._clock() + timeout
            while not self._closed:
                now = self._clock()
                if self._release_due(now) > 1:
                    self._cond.notify_all()  # the other idle workers may sleep past the due time otherwise
                entry = None if cold and self._warm_waiting else self._take_ready()
                if entry is not None:
                    if not cold and self._cold_waiting and not self._warm_waiting:
                        self._cond.notify_all()  # what is left is for a new session now
                    return entry
                if deadline is not None and now >= deadline:
                    return None
                wait = None if deadline is None else deadline - now
                if self._timers:  # after _release_due, the first timer lies in the future
                    until_due = self._timers[0][0] - now
                    wait = until_due if wait is None else min(wait, until_due)
                self._wait_in_take(wait, cold)
            return None

    def _take_ready(self) -> Entry | None:
        for queue in self._ready:
            entry = self._first_free(queue)
            if entry is not None:
                del queue[entry.path]
                entry.attempts += 1
                entry.reserved = entry.job.remote_path
                self._reserved[entry.reserved] = entry.path
                self._in_flight[entry.path] = entry
                self._publish()
                return entry
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

    def untake(self, entry: Entry) -> None:
        """Give back a job taken but never attempted (its worker lost its session first): first in its queue again."""
        with self._cond:
            path = entry.path
            if self._in_flight.pop(path, None) is None:
                return
            waiting = self._release(entry)
            entry.attempts -= 1
            follow_up = self._follow_ups.pop(path, None)
            if follow_up is not None:
                entry.job = _merge(entry.job, follow_up)
            queue = self._ready[_queue_index(entry.job.priority)]
            queue[path] = entry
            queue.move_to_end(path, last=False)
            self._publish()
            self._wake(1 + waiting)

    def finish(self, entry: Entry, outcome: Outcome, job: UploadJob | None = None) -> float:
        """Record how `entry`'s attempt ended; returns the seconds it now waits (0 when ready or done).

        `job` is the file's new state for `changed` (queued again at once).
        """
        with self._cond:
            path = entry.path
            self._in_flight.pop(path, None)
            waiting = self._release(entry)
            self._record_part(entry, outcome)
            follow_up = self._follow_ups.pop(path, None)
            delay = 0.0
            if outcome in (Outcome.DELIVERED, Outcome.GONE):
                if follow_up is not None and (outcome == Outcome.GONE or not _same_version(follow_up, entry.job)):
                    self._make_ready(Entry(follow_up))
            elif outcome == Outcome.CHANGED:
                newest = job or entry.job
                entry.job = _merge(follow_up, newest) if follow_up else newest
                self._make_ready(entry)
            elif follow_up is not None and not _same_version(follow_up, entry.job):
                entry.job, entry.failures, entry.parked = _merge(entry.job, follow_up), 0, False
                self._make_ready(entry)
            else:
                if follow_up is not None:
                    entry.job = _merge(entry.job, follow_up)
                entry.failures += 1
                entry.parked = outcome == Outcome.PARKED
                if entry.parked:
                    delay = self.retry_max
                else:
                    delay = full_jitter(entry.failures, self.retry_base, self.retry_max, self._rand)
                self._wait(entry, delay)
            self._publish()
            self._wake(1 + waiting)  # and the job that waited for this remote path, if any
            return delay

    def in_flight(self, entry: Entry) -> bool:
        """Whether `entry`'s attempt is still open (taken and not finished)."""
        with self._cond:
            return self._in_flight.get(entry.path) is entry

    def part_is_ours(self, job: UploadJob) -> bool:
        """Whether the `.part` of `job.remote_path` was last written by a STOR of this very version of the file."""
        with self._cond:
            return self._parts.get(job.remote_path, (None, False))[0] == _version(job)

    def may_replace(self, job: UploadJob, existing_size: int) -> bool:
        """Whether the file of `existing_size` bytes at `job.remote_path` may be replaced by `job`'s file.

        Yes when this process placed it there from the same source file (an earlier version, or the
        `X.csv` of an `X.csv.final`); no when it placed another file there; otherwise only a copy of
        the same size (what a crash between the rename and the local delete leaves) is replaced, or,
        for a `.final`, a copy no larger than it: its day's `X.csv` sent when the `.final` was late.
        """
        with self._cond:
            source = self._placed.get(job.remote_path)
        if source is not None:
            return source == delivered_file(job.local_path)
        return existing_size == job.size or (is_final(job.local_path) and existing_size <= job.size)

    def part_is_complete(self, job: UploadJob) -> bool:
        """Whether that `.part` got the whole of this version (its STOR ended with the 226)."""
        with self._cond:
            return self._parts.get(job.remote_path) == (_version(job), True)

    def parts_snapshot(self) -> list[tuple[str, str, int, int, bool]]:
        """Every `.part` this process's STORs left unrenamed: (remote path, local path, size, mtime_ns, complete)."""
        with self._cond:
            return [(remote, *version, complete) for remote, (version, complete) in self._parts.items()]

    def restore_parts(self, records: list[tuple[str, str, int, int, bool]]) -> None:
        """Take over `parts_snapshot` of an earlier process, so that its cut transfers resume here."""
        with self._cond:
            for remote, local, size, mtime_ns, complete in records:
                self._parts.setdefault(remote, ((local, size, mtime_ns), complete))

    # --- inspection

    def counts(self) -> dict[str, int]:
        with self._cond:
            return self._counts()

    def _counts(self) -> dict[str, int]:
        return {
            "queued_primary": len(self._ready[0]),
            "queued_secondary": len(self._ready[1]),
            "waiting": len(self._waiting),
            "parked": self._parked,
            "in_flight": len(self._in_flight),
        }

    # --- internals (called with the condition held)

    def _wake(self, n: int = 1) -> None:
        """Wake `n` takers; all of them while cold ones wait (one woken at random may be the wrong kind)."""
        if self._cold_waiting:
            self._cond.notify_all()
        else:
            self._cond.notify(n)

    def _release(self, entry: Entry) -> int:
        """Free the entry's remote path; 1 when a ready job was waiting for it, else 0."""
        remote, entry.reserved = entry.reserved, ""
        if not remote or self._reserved.get(remote) != entry.path:
            return 0
        del self._reserved[remote]
        if remote in self._contended:
            self._contended.discard(remote)
            return 1
        return 0

    def _first_free(self, queue: OrderedDict[str, Entry]) -> Entry | None:
        """The first job whose remote path is not in flight: one for a path in flight waits its turn."""
        for entry in queue.values():
            remote = entry.job.remote_path
            if remote not in self._reserved:
                return entry
            self._contended.add(remote)
        return None

    def _record_part(self, entry: Entry, outcome: Outcome) -> None:
        """Note whose bytes the attempt left in its remote path's `.part`, and what it renamed onto the final name."""
        progress, entry.progress = entry.progress, None
        remote = entry.job.remote_path
        if progress is not None and progress.renamed:
            self._placed[remote] = delivered_file(entry.path)
            self._placed.move_to_end(remote)
            if len(self._placed) > self.placed_memory:
                self._placed.popitem(last=False)
        abandoned = outcome == Outcome.GONE and self._parts.get(remote, (("",), False))[0][0] == entry.path
        if outcome == Outcome.DELIVERED or abandoned:
            self._parts.pop(remote, None)  # renamed away, or nobody will resume it
        elif progress is not None and progress.stored:
            self._parts[remote] = (_version(entry.job), progress.complete)

    def _make_ready(self, entry: Entry) -> None:
        self._ready[_queue_index(entry.job.priority)][entry.path] = entry
        self._publish()

    def _wait(self, entry: Entry, delay: float) -> None:
        entry.due = self._clock() + delay
        self._waiting[entry.path] = entry
        self._parked += entry.parked
        self._sequence += 1
        heapq.heappush(self._timers, (entry.due, self._sequence, entry.path))

    def _release_due(self, now: float) -> int:
        """Move waiting jobs whose time has come back to their queue (stale timers are skipped); how many moved."""
        released = 0
        while self._timers and self._timers[0][0] <= now:
            due, _, path = heapq.heappop(self._timers)
            entry = self._waiting.get(path)
            if entry is not None and entry.due == due:
                self._make_ready(self._unwait(path))
                released += 1
        return released

    def _unwait(self, path: str) -> Entry:
        entry = self._waiting.pop(path)
        self._parked -= entry.parked
        return entry

    def _publish(self) -> None:
        if self._counters is not None:
            self._counters.set(**self._counts())
