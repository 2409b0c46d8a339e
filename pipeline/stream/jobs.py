"""The whole stream core from plain values: outbox events and the backfill become upload jobs.

::

    watch ─► observe_on_in_runs ─► watched_files ─► debounce_per_path ─► ready_upload_jobs ─┐
                                                                                            merge ─►
    backfill (FOUND, priority 1) ──────────────────────────────────────► ready_upload_jobs ─┘

    ─► dedupe_jobs ─► the jobs

(`ready_upload_jobs` is `ready_files` then `to_upload_jobs`, in one operator: every file passes it.)

The backfill skips the debounce: its files were quiet for `min_age_seconds` already. Everything
runs on one scheduler (by default a thread per subscription), so the operators' state is never
touched by two threads at once; but for `released`, the paths the sink is done with, which
`dedupe_jobs` takes in the thread that reports them (it locks its state for that): handing each
over to the loop would cost a scheduled action and a wake of the loop per delivered file. The
rules it shares with a single scan (`run --once`) are `pipeline.stream.scan_jobs`'s.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops
from reactivex.disposable import CompositeDisposable

from operators.choices import BACKFILL_ORDERS, DEFAULT_IGNORE_PATTERNS, OBSERVER_KINDS
from operators.debounce import debounce_per_path
from operators.dedupe import dedupe_jobs
from operators.hand_over import observe_on_in_runs
from operators.job_mapping import StatFn
from operators.model import EventKind, FileEvent, UploadJob
from operators.ready_files import watched_files
from operators.upload_jobs import ready_upload_jobs
from pipeline.outbox.file_state import finished_file_stat, regular_file_stat
from pipeline.outbox.lock import STATE_FOLDER
from pipeline.stream.backfill import backfill_source
from pipeline.stream.monotonic import MonotonicEventLoopScheduler
from pipeline.stream.scan import outbox_root
from pipeline.stream.scan_jobs import StationNameCheck, quiet_period, with_state_folder
from pipeline.stream.watch import watch_source

log = logging.getLogger("beemon.stream.jobs")
JobsOperator = Callable[..., Callable[[Observable[FileEvent]], Observable[UploadJob]]]


def _deleted(event: FileEvent) -> bool:
    """A deletion ends a path's wait: `ready_upload_jobs` would drop it after the debounce anyway."""
    return event.kind is EventKind.DELETED


def logging_links(stat: StatFn) -> StatFn:
    """`stat`, with a log line when what it refuses is a symlink: links are never followed, and one
    made while running would otherwise be skipped without a word (the scans log those they meet)."""

    def checked(path: str) -> os.stat_result | None:
        st = stat(path)
        if st is None and os.path.islink(path):
            log.info("skipping the symlink %s: links are not followed", path)
        return st

    return checked


def build_job_stream(
    outbox: str,
    *,
    remote_root: str,
    station: str,
    observer: str = "inotify",
    polling_interval: float = 1.0,
    debounce_seconds: float = 2.0,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    backfill_order: str = "newest",
    rescan_interval: float = 0.0,
    released: Observable[str] | None = None,
    scheduler: abc.SchedulerBase | None = None,
    backfill_may_emit: Callable[[], bool] | None = None,
    orphan_csv_after_seconds: float | None = None,
) -> Observable[UploadJob]:
    """Upload jobs for every finished file in `outbox`: those there at start, then each as it is finished.

    Subscribing starts the observer before the initial scan, so nothing written in between is
    missed (a file seen by both gives one job). `rescan_interval` > 0 repeats the scan, the safety
    net for dropped events. `released` carries the local paths the sink is done with (delivered,
    or gone), so that a later change of the same path makes a job again. `backfill_may_emit` holds
    the scan back while it says no (see `backfill_source`); live files never wait for it. A past
    day's bare `.csv` quiet for `orphan_csv_after_seconds` without its `.final` is delivered as that
    day's file (None: never). Disposing stops the observer (joined), the scans and the timers.
    Reads no settings.

    Everything runs on `scheduler`, which must run one action at a time (the default, an
    event loop per subscription timed by the monotonic clock, does; a thread pool would not).
    """
    if observer not in OBSERVER_KINDS:
        raise ValueError(f"observer must be one of {OBSERVER_KINDS}, not {observer!r}")
    if backfill_order not in BACKFILL_ORDERS:
        raise ValueError(f"backfill_order must be one of {BACKFILL_ORDERS}, not {backfill_order!r}")
    parts = _JobStream(
        root=outbox_root(outbox),
        remote_root=remote_root,
        station=station,
        observer=observer,
        polling_interval=polling_interval,
        quiet=quiet_period(observer, debounce_seconds, polling_interval),
        patterns=with_state_folder(ignore_patterns),
        backfill_order=backfill_order,
        rescan_interval=rescan_interval,
        orphan_csv_after_seconds=orphan_csv_after_seconds,
        backfill_may_emit=backfill_may_emit,
        released=released,
        scheduler=scheduler,
    )
    return Observable(parts.subscribe)


@dataclass(frozen=True, slots=True)
class _JobStream:
    """The job stream's parts, from checked plain values; each subscription builds them anew on its scheduler."""

    root: str
    remote_root: str
    station: str
    observer: str
    polling_interval: float
    quiet: float
    patterns: tuple[str, ...]
    backfill_order: str
    rescan_interval: float
    orphan_csv_after_seconds: float | None
    backfill_may_emit: Callable[[], bool] | None
    released: Observable[str] | None
    scheduler: abc.SchedulerBase | None

    @property
    def polling(self) -> bool:
        return self.observer == "polling"

    def subscribe(
        self, downstream: abc.ObserverBase[UploadJob], _scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        own_loop = MonotonicEventLoopScheduler() if self.scheduler is None else None
        loop = self.scheduler or own_loop
        assert loop is not None
        # Polling serves network mounts, where leases mean nothing (CIFS even refuses them all).
        stat = logging_links(regular_file_stat if self.polling else finished_file_stat)

        def jobs(polling: bool, watched: bool = False) -> Callable[[Observable[FileEvent]], Observable[UploadJob]]:
            """The ready files as jobs (live readiness follows the observer kind; the backfill's does not; the
            live events passed `watched_files` with the same patterns and root: `watched`)."""
            return ready_upload_jobs(
                self.patterns,
                outbox=self.root,
                remote_root=self.remote_root,
                station=self.station,
                stat=stat,
                polling=polling,
                watched=watched,
            )

        forget = self.released  # (taken in the reporting thread: see the module docstring)
        # merge subscribes in order: the observer is running before the backfill's scan is scheduled.
        subscription = (
            reactivex.merge(self.live(loop, jobs), self.backfill(loop, jobs))
            .pipe(dedupe_jobs(forget), ops.do_action(StationNameCheck(self.station)))
            .subscribe(downstream)
        )
        return CompositeDisposable(subscription, *([own_loop] if own_loop else []))

    def live(self, loop: abc.SchedulerBase, jobs: JobsOperator) -> Observable[UploadJob]:
        """Watched events (none from the state folder), each path debounced until quiet, the finished ones as jobs."""
        return watch_source(self.root, self.observer, self.polling_interval, unwatched=(STATE_FOLDER,)).pipe(
            observe_on_in_runs(loop),
            watched_files(self.patterns, root=self.root),
            debounce_per_path(self.quiet, loop, ends=_deleted),
            jobs(self.polling, watched=True),
        )

    def backfill(self, loop: abc.SchedulerBase, jobs: JobsOperator) -> Observable[UploadJob]:
        """The files already there (and at each rescan) as backfill jobs; no debounce: they were quiet already."""
        return backfill_source(
            self.root,
            order=self.backfill_order,
            ignore_patterns=self.patterns,
            min_age_seconds=self.quiet,
            rescan_interval=self.rescan_interval,
            scheduler=loop,
            may_emit=self.backfill_may_emit,
            orphan_csv_after_seconds=self.orphan_csv_after_seconds,
        ).pipe(jobs(False))
