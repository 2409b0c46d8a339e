"""The backfill source: the files already in the outbox, newest date first, and again every rescan.

At start it finds what a previous run (or an outage) left behind; the periodic rescan is the
safety net for events the kernel dropped (inotify queue overflow, watch limits). It is also where
a past day's bare `X.csv` whose `.final` never came (the station lost power before midnight) is
found: once quiet for `orphan_csv_after_seconds`, it is emitted as `DAY_FILE`, delivered under its
own name as that day's file.

The scan is lazy and its memory bounded: it walks the folders first (few: sensors x days), then
lists one date's folders at a time, merging them by (date, mtime). Only files outside any date
folder are listed up front. So the first file comes out after a walk of the folder tree, not
after a stat of every file, and memory follows the largest day, not the outbox.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable, SerialDisposable
from reactivex.internal.exceptions import DisposedException

from operators.choices import BACKFILL_ORDERS
from operators.file_rules import is_daily_csv
from operators.model import EventKind, FileEvent, Priority
from operators.ready_files import is_ignored_name, is_wanted
from operators.remote_path import DATE_FOLDER, date_of
from pipeline.outbox.deletion import final_beside
from pipeline.outbox.file_state import regular_file_stat
from pipeline.stream.monotonic import MonotonicEventLoopScheduler

log = logging.getLogger(__name__)

#: Files emitted per scheduled step: live events interleave between steps on a shared scheduler.
BATCH = 256
#: An mtime this far in the future is a clock jump, not a file being written: never wait for it.
FUTURE_TOLERANCE_SECONDS = 60.0
#: A file's mtime comes from the kernel's coarse clock, a tick or so behind `time.time()`.
MTIME_SLACK_SECONDS = 0.05
#: While `may_emit` holds the scan back, how often it asks again.
PACE_SECONDS = 0.25
#: `upload.orphan_csv_after_hours`' default: a past day's bare `.csv` this long quiet has no `.final` coming.
ORPHAN_CSV_AFTER_SECONDS = 6 * 3600.0

#: (date, mtime_ns, path): the order of the scan.
Entry = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class _Folder:
    path: str
    parts: tuple[str, ...]  # below the outbox
    date: str  # of the nearest date folder at or above it, "" if none


def _scandir(path: str) -> Iterator[os.DirEntry[str]]:
    """The folder's entries; nothing if it vanished meanwhile (a scan races the sink's deletions)."""
    try:
        with os.scandir(path) as entries:
            yield from entries
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as error:
        log.warning("cannot list %s: %s", path, error)


def _folders(root: str, patterns: Sequence[str]) -> list[_Folder]:
    """Every folder under `root` (itself included), not following symlinks, skipping ignored names."""
    found: list[_Folder] = []
    stack = [_Folder(root, (), "")]
    while stack:
        folder = stack.pop()
        found.append(folder)
        for entry in _scandir(folder.path):
            if entry.is_symlink():
                log.info("skipping the symlink %s: the backfill does not follow links", entry.path)
            elif entry.is_dir(follow_symlinks=False) and not is_ignored_name(entry.name, patterns):
                date = entry.name if DATE_FOLDER.match(entry.name) else folder.date
                stack.append(_Folder(entry.path, (*folder.parts, entry.name), date))
    return found


def _files(folder: _Folder, root: str, patterns: Sequence[str], newest: bool, day_files: bool = False) -> list[Entry]:
    """The wanted regular files directly in `folder`, sorted by (date, mtime); with `day_files` bare `.csv` too."""
    entries: list[Entry] = []
    for entry in _scandir(folder.path):
        if not entry.is_file(follow_symlinks=False) or not is_wanted(entry.path, patterns, root, day_file=day_files):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # deleted since the listing
        date = date_of((*folder.parts, entry.name), entry.name, st.st_mtime)
        entries.append((date, st.st_mtime_ns, entry.path))
    entries.sort(reverse=newest)
    return entries


def iter_outbox(
    root: str, *, order: str = "newest", ignore_patterns: Sequence[str] = (), day_files: bool = False
) -> Iterator[Entry]:
    """(date, mtime_ns, path) of every wanted file in the outbox, lazily, in `order` ("newest" or "oldest").

    The date is the mapping's (`date_of`): the name's, else the date folder's, else the mtime's.
    Nothing is read before the first item is asked for. `day_files`: bare `.csv` files too.
    """
    if order not in BACKFILL_ORDERS:
        raise ValueError(f"order must be one of {BACKFILL_ORDERS}, not {order!r}")
    return _ordered_files(root, order == "newest", tuple(ignore_patterns), day_files)


def _ordered_files(root: str, newest: bool, patterns: tuple[str, ...], day_files: bool = False) -> Iterator[Entry]:
    folders = _folders(root, patterns)
    dated = sorted((f for f in folders if f.date), key=lambda f: f.date, reverse=newest)
    loose = sorted(
        (entry for f in folders if not f.date for entry in _files(f, root, patterns, newest, day_files)),
        reverse=newest,
    )

    def by_date() -> Iterator[Entry]:
        for _date, group in itertools.groupby(dated, key=lambda f: f.date):
            yield from heapq.merge(*(_files(f, root, patterns, newest, day_files) for f in group), reverse=newest)

    yield from heapq.merge(loose, by_date(), reverse=newest)


def is_young(mtime: float, now: float, min_age_seconds: float) -> bool:
    """Whether a file last modified at `mtime` may still be being written: changed less than `min_age_seconds` ago.

    An mtime far in the future is a clock jump, not a writer: never young.
    """
    age = now - mtime
    return -FUTURE_TOLERANCE_SECONDS < age < min_age_seconds


def is_orphan_csv(path: str, day: str, mtime: float, now: float, quiet_seconds: float) -> bool:
    """Whether a bare `.csv` is its day's file for good: a past day, no `.final` beside it, quiet `quiet_seconds`.

    The day is the mapping's (`date_of`); "past" and "quiet" are by the wall clock, the clock of the
    mtime. A file dated in the future, or undated, is never an orphan.
    """
    try:
        today = datetime.fromtimestamp(now).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return False
    return (
        is_daily_csv(path)
        and DATE_FOLDER.match(day) is not None
        and day < today
        and now - mtime >= quiet_seconds
        and final_beside(path) is None
    )


def scan_outbox(
    root: str,
    *,
    order: str = "newest",
    ignore_patterns: Sequence[str] = (),
    min_age_seconds: float = 0.0,
    on_young: Callable[[str], None] | None = None,
    clock: Callable[[], float] = time.time,
    orphan_csv_after_seconds: float | None = None,
) -> Iterator[FileEvent]:
    """FOUND events (backfill priority) for the files in the outbox, skipping those younger than `min_age_seconds`.

    A young file may still be being written: `on_young` hears of it, so the caller can look again
    once it has been quiet long enough (a live Closed usually comes first). A past day's bare
    `.csv` without its `.final`, quiet for `orphan_csv_after_seconds` (None: never), is a
    `DAY_FILE` event (see `is_orphan_csv`).
    """
    day_files = orphan_csv_after_seconds is not None
    for day, mtime_ns, path in iter_outbox(root, order=order, ignore_patterns=ignore_patterns, day_files=day_files):
        if day_files and is_daily_csv(path):
            assert orphan_csv_after_seconds is not None
            if is_orphan_csv(path, day, mtime_ns / 1e9, clock(), orphan_csv_after_seconds):
                yield FileEvent(EventKind.DAY_FILE, path, priority=Priority.BACKFILL)
            continue
        if min_age_seconds > 0 and is_young(mtime_ns / 1e9, clock(), min_age_seconds):
            if on_young is not None:
                on_young(path)
            continue
        yield FileEvent(EventKind.FOUND, path, priority=Priority.BACKFILL)


class _Backfill:
    """One subscription's scans, young-file rechecks and rescans, stepped on the scheduler."""

    def __init__(
        self,
        observer: abc.ObserverBase[FileEvent],
        scheduler: abc.SchedulerBase,
        scan: Callable[[Callable[[str], None]], Iterator[FileEvent]],
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
        self.current = self.scan(self.young.add)
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
    the next rescan. (A pause in the writing looks the same: the job stage's stat tells, see
    `pipeline.stream.jobs.finished_file_stat`; a duplicate of a live job is dropped by the dedupe, a
    live job after it promotes it.) Completes after the scan and its young files when there are no
    rescans. Emission is
    stepped in batches on `scheduler` (by default a thread of its own per subscription), so live
    events interleave with a long scan. `may_emit`, when given, is asked before each batch: while it
    says no, the scan waits (asking again every `PACE_SECONDS`), so a consumer can keep the part of a
    large backlog it holds in memory bounded; the rest stays in the outbox, listed one day at a time.
    """
    if order not in BACKFILL_ORDERS:
        raise ValueError(f"order must be one of {BACKFILL_ORDERS}, not {order!r}")
    root = os.path.abspath(outbox)
    patterns = tuple(ignore_patterns)

    def scan(on_young: Callable[[str], None]) -> Iterator[FileEvent]:
        return scan_outbox(
            root,
            order=order,
            ignore_patterns=patterns,
            min_age_seconds=min_age_seconds,
            on_young=on_young,
            clock=clock,
            orphan_csv_after_seconds=orphan_csv_after_seconds,
        )

    def subscribe(
        observer: abc.ObserverBase[FileEvent], scheduler_: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        own_loop = None if (scheduler or scheduler_) else MonotonicEventLoopScheduler()
        chosen = scheduler or scheduler_ or own_loop
        assert chosen is not None
        backfill = _Backfill(
            observer,
            chosen,
            scan,
            min_age_seconds=min_age_seconds,
            rescan_interval=rescan_interval,
            clock=clock,
            may_emit=may_emit,
        )
        backfill._schedule(backfill.next_step, backfill.start)
        disposables = CompositeDisposable(Disposable(backfill.dispose))
        if own_loop is not None:
            disposables.add(own_loop)
        return disposables

    return Observable(subscribe)
