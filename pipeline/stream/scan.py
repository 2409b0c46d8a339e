"""The outbox scan: every wanted file in it, lazily, newest (or oldest) date first.

What the backfill emits at start and at each rescan, what `run --once` delivers, and what the
watch reports after re-arming on a new outbox folder. A past day's bare `X.csv` whose `.final`
never came (the station lost power before midnight) is found here: once quiet for
`orphan_csv_after_seconds`, it is a `DAY_FILE` event, delivered under its own name as that day's file.

The scan is lazy and its memory bounded: it walks the folders first (few: sensors x days), then
lists one date's folders at a time, merging them by (date, mtime). Only files outside any date
folder are listed up front. So the first file comes out after a walk of the folder tree, not
after a stat of every file, and memory follows the largest day, not the outbox.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from operators.choices import BACKFILL_ORDERS
from operators.file_rules import is_daily_csv
from operators.model import EventKind, FileEvent, Priority
from operators.readiness import is_ignored_name, is_wanted
from operators.remote_path import DATE_FOLDER, date_of
from pipeline.outbox.deletion import final_beside

#: The scan's lines keep the backfill's logger name, which they had before the scan had a module of its own.
log = logging.getLogger("beemon.stream.backfill")

#: An mtime this far in the future is a clock jump, not a file being written: never wait for it.
FUTURE_TOLERANCE_SECONDS = 60.0
#: `upload.orphan_csv_after_hours`' default: a past day's bare `.csv` this long quiet has no `.final` coming.
ORPHAN_CSV_AFTER_SECONDS = 6 * 3600.0

#: (date, mtime_ns, path): the order of the scan.
Entry = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class _Folder:
    path: str
    parts: tuple[str, ...]  # below the outbox
    date: str  # of the nearest date folder at or above it, "" if none


def outbox_root(outbox: str) -> str:
    """The outbox as the absolute path of the folder itself: symlinks resolved, once, at start.

    inotify watches a symlinked outbox's target but reports paths under the link, and adds no
    watch for folders made below it later; resolving first keeps every path and watch on one tree.
    """
    return os.path.realpath(outbox)


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
