"""The backfill source: the files already in the outbox, newest date first, and again every rescan.

At start it finds what a previous run (or an outage) left behind; the periodic rescan is the
safety net for events the kernel dropped (inotify queue overflow, watch limits). What one scan
finds, and in which order, is `pipeline.stream.scan`'s; here the scans are stepped on a scheduler
in batches, young files are looked at again once quiet, and a consumer may hold the scan back.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.internal.exceptions import DisposedException

from operators.choices import BACKFILL_ORDERS
from operators.model import EventKind, FileEvent, Priority
from pipeline.outbox.file_state import regular_file_stat
from pipeline.stream.monotonic import MonotonicEventLoopScheduler
from pipeline.stream.scan import is_young, scan_outbox

log = logging.getLogger("beemon.stream.backfill")

#: Files emitted per scheduled step: live events interleave between steps on a shared scheduler.
BATCH = 256
#: A file's mtime comes from the kernel's coarse clock, a tick or so behind `time.time()`.
MTIME_SLACK_SECONDS = 0.05
#: While `may_emit` holds the scan back, how often it asks again.
PACE_SECONDS = 0.25


class _Backfill:
    """One subscription's scans, young-file rechecks and rescans, stepped on the scheduler."""

    def __init__(
        self,
        observer: abc.ObserverBase[FileEvent],
        scheduler: abc.SchedulerBase,
        scan: Callable[..., Iterator[FileEvent]],
        *,
        min_age_seconds: float,
        rescan_interval: float,
        clock: Callable[[], float],
        may_emit: Callable[[], bool] | None = None,
    ) -> None:
        self.observer = observer
        self.scheduler = scheduler
        self.scan = scan
        self.min_age_seconds = min_age_seconds
        self.rescan_interval = rescan_interval
        self.clock = clock
        self.may_emit = may_emit
        self.young: set[str] = set()
        #: Files modified since then were written while the outbox was watched (see `recheck`).
        self.watched_since = clock() - MTIME_SLACK_SECONDS
        self.current: Iterator[FileEvent] | None = None
        self.disposed = False
        self.next_step = SerialDisposable()
        self.next_recheck = SerialDisposable()

    def _schedule(self, slot: SerialDisposable, action: Callable[..., None], delay: float = 0.0) -> None:
        if self.disposed:
            return
        with contextlib.suppress(DisposedException):  # shutting down: the scheduler went first
            slot.disposable = (
                self.scheduler.schedule_relative(delay, action) if delay > 0 else self.scheduler.schedule(action)
            )

    def start(self, *_: Any) -> None:
        self.current = self.scan(on_young=self.young.add)
        self.step()

    def step(self, *_: Any) -> None:
        current = self.current
        if current is None or self.disposed:
            return
        try:
            if self.may_emit is not None and not self.may_emit():
                self._schedule(self.next_step, self.step, PACE_SECONDS)
                return
            for _ in range(BATCH):
                event = next(current, None)
                if event is None:
                    self.current = None
                    self._scan_finished()
                    return
                if self.disposed:
                    return
                self.observer.on_next(event)
        except Exception as error:
            self.observer.on_error(error)
            return
        self._schedule(self.next_step, self.step)

    def _scan_finished(self) -> None:
        if self.young:
            self._schedule(self.next_recheck, self.recheck, self.min_age_seconds)
        if self.rescan_interval > 0:
            self._schedule(self.next_step, self.start, self.rescan_interval)
        elif not self.young:
            self.observer.on_completed()

    def recheck(self, *_: Any) -> None:
        """Emit the young files that have been quiet long enough; keep waiting for the others.

        A file last modified before the subscription (the watch starts first) is backlog like the
        rest of the scan, so backfill: live priority would put a backlog copied in just before the
        start (fresh mtimes, hundreds of files) ahead of every recording made afterwards. One
        modified since was recorded while the outbox was watched: live, in case the watcher missed
        it (a polling observer's first snapshot, a new folder's late watch); when it did not, its
        live job came first and this one is a duplicate the dedupe drops.
        """
        for path in sorted(self.young):
            st = regular_file_stat(path)
            if st is None:
                self.young.discard(path)
            elif not is_young(st.st_mtime, self.clock(), self.min_age_seconds):
                self.young.discard(path)
                live = st.st_mtime >= self.watched_since
                priority = Priority.LIVE if live else Priority.BACKFILL
                self.observer.on_next(FileEvent(EventKind.FOUND, path, priority=priority))
        if self.young:
            self._schedule(self.next_recheck, self.recheck, self.min_age_seconds)
        elif self.rescan_interval <= 0 and self.current is None:
            self.observer.on_completed()

    def dispose(self) -> None:
        self.disposed = True
        self.current = None
        self.next_step.dispose()
        self.next_recheck.dispose()


def backfill_source(
    outbox: str,
    *,
    order: str = "newest",
    ignore_patterns: Sequence[str] = (),
    min_age_seconds: float = 0.0,
    rescan_interval: float = 0.0,
    scheduler: abc.SchedulerBase | None = None,
    clock: Callable[[], float] = time.time,
    may_emit: Callable[[], bool] | None = None,
    orphan_csv_after_seconds: float | None = None,
) -> Observable[FileEvent]:
    """FOUND events for the files in `outbox` at subscription, then again every `rescan_interval` s (if > 0).

    Files younger than `min_age_seconds` may still be being written: they are emitted once quiet
    that long (as backfill, or live if modified after the subscription: see `_Backfill.recheck`),
    so that one finished just before the start, whose Closed came before the watch, is not left for
    the next rescan (a pause in the writing looks the same: the job stage's stat tells, see
    `pipeline.outbox.file_state.finished_file_stat`; a duplicate of a live job is dropped by the
    dedupe, a live job after it promotes it). Completes after the scan and its young files
    when there are no rescans. Emission is stepped in batches on `scheduler` (by default a thread of
    its own), so live events interleave with a long scan. While `may_emit` (asked before each batch)
    says no, the scan waits, asking every `PACE_SECONDS`: a consumer keeps what it holds bounded.
    """
    if order not in BACKFILL_ORDERS:
        raise ValueError(f"order must be one of {BACKFILL_ORDERS}, not {order!r}")
    scan = functools.partial(
        scan_outbox,
        os.path.abspath(outbox),
        order=order,
        ignore_patterns=tuple(ignore_patterns),
        min_age_seconds=min_age_seconds,
        clock=clock,
        orphan_csv_after_seconds=orphan_csv_after_seconds,
    )

    def subscribe(
        observer: abc.ObserverBase[FileEvent], scheduler_: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        return _start(
            observer,
            scheduler or scheduler_,
            scan,
            min_age_seconds=min_age_seconds,
            rescan_interval=rescan_interval,
            clock=clock,
            may_emit=may_emit,
        )

    return Observable(subscribe)


def _start(
    observer: abc.ObserverBase[FileEvent],
    scheduler: abc.SchedulerBase | None,
    scan: Callable[..., Iterator[FileEvent]],
    **backfill: Any,
) -> abc.DisposableBase:
    """Start one subscription's scans on `scheduler` (else on an event loop of its own, disposed with it)."""
    own_loop = None if scheduler else MonotonicEventLoopScheduler()
    chosen = scheduler or own_loop
    assert chosen is not None
    steps = _Backfill(observer, chosen, scan, **backfill)
    steps._schedule(steps.next_step, steps.start)
    disposables = CompositeDisposable(Disposable(steps.dispose))
    if own_loop is not None:
        disposables.add(own_loop)
    return disposables
