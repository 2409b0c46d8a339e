"""Which file events may become uploads, and which mean "this file is finished".

Two steps, split around the per-path debounce so that a deletion can cancel a pending upload:

- `watched_files` (before the debounce) drops what can never be uploaded (directories, ignored
  names, a bare `.csv`) and splits a move into DELETED(source) + MOVED(destination).
- `ready_files` (after the debounce, on each path's last event of a quiet period) keeps the kinds
  that mean finished: CLOSED, MOVED (in), FOUND and DAY_FILE (backfill) and CREATED (inotify
  reports a file moved in from outside the watch, or written into a new folder before its watch
  existed, as Created only); with the polling observer also MODIFIED, which never sees Closed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from fnmatch import fnmatchcase

from reactivex import Observable, abc
from reactivex import operators as ops

from operators.model import EventKind, FileEvent
from operators.remote_path import remote_name

READY_KINDS = frozenset({EventKind.CLOSED, EventKind.MOVED, EventKind.FOUND, EventKind.CREATED, EventKind.DAY_FILE})
POLLING_READY_KINDS = READY_KINDS | {EventKind.MODIFIED}


def is_ignored_name(name: str, patterns: Iterable[str]) -> bool:
    """True if one path segment matches one of the patterns (fnmatch ignoring case: `X.PART` is a `*.part`)."""
    folded = name.lower()
    return any(fnmatchcase(folded, pattern.lower()) for pattern in patterns)


def parts_below(path: str, root: str) -> tuple[str, ...] | None:
    """The segments of `path` below `root`, or None if it does not lie below it."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    if os.path.isabs(root) and path.startswith(prefix):  # the common case, without relpath's cost
        parts = tuple(path[len(prefix) :].split(os.sep))
        if all(part not in ("", os.curdir, os.pardir) for part in parts):
            return parts
    try:
        relative = os.path.relpath(path, root)
    except ValueError:  # an empty path: below nothing (raising would end the whole stream)
        return None
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        return None
    return tuple(relative.split(os.sep))


def relative_parts(path: str, root: str = "") -> tuple[str, ...]:
    """The segments of `path` below `root`; only the name when there is no root or the path is outside it."""
    parts = parts_below(path, root) if root else None
    return parts or (os.path.basename(path),)


def is_wanted(path: str, patterns: Sequence[str], root: str = "", *, day_file: bool = False) -> bool:
    """True if the file may ever be uploaded: no segment below `root` is ignored and the name maps to a remote name.

    Checking the folders too keeps `.Trash-1000/`, `.git/` and other hidden trees out. `day_file`:
    a bare `.csv` counts (the backfill delivers a past day's one whose `.final` never came).
    """
    parts = relative_parts(path, root)
    if not parts or remote_name(parts[-1], day_file=day_file) is None:
        return False
    return not any(is_ignored_name(part, patterns) for part in parts)


def is_ready(event: FileEvent, patterns: Sequence[str] = (), root: str = "", *, polling: bool = False) -> bool:
    """True if `event` (a path's last event of a quiet period) means the file is finished and wanted."""
    kinds = POLLING_READY_KINDS if polling else READY_KINDS
    day_file = event.kind is EventKind.DAY_FILE
    return event.kind in kinds and not event.is_directory and is_wanted(event.path, patterns, root, day_file=day_file)


def _split_move(event: FileEvent) -> tuple[FileEvent, ...]:
    if event.kind is EventKind.MOVED and event.src_path:
        gone = FileEvent(EventKind.DELETED, event.src_path, event.is_directory, priority=event.priority)
        return (gone, event)
    return (event,)


def watched_files(
    ignore_patterns: Sequence[str] = (), *, root: str = ""
) -> Callable[[Observable[FileEvent]], Observable[FileEvent]]:
    """Keep the file events that may lead to an upload; a move also becomes a deletion of its source.

    ::

        a---m(x->y)---d---|      m(x->y) with x and y wanted
        a---(dx,my)---d---|
    """
    patterns = tuple(ignore_patterns)

    def keep(event: FileEvent) -> bool:
        return not event.is_directory and is_wanted(event.path, patterns, root)

    def operator(source: Observable[FileEvent]) -> Observable[FileEvent]:
        def subscribe(
            observer: abc.ObserverBase[FileEvent], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            def on_next(event: FileEvent) -> None:
                try:
                    parts = [part for part in _split_move(event) if keep(part)]
                except Exception as error:
                    observer.on_error(error)
                    return
                for part in parts:
                    observer.on_next(part)

            return source.subscribe(on_next, observer.on_error, observer.on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator


def ready_files(
    ignore_patterns: Sequence[str] = (), *, root: str = "", polling: bool = False
) -> Callable[[Observable[FileEvent]], Observable[FileEvent]]:
    """Keep the events that mean a wanted file is finished (see the module docstring for which).

    Put it after `debounce_per_path`: then a path's pending Closed followed by Deleted or Modified
    (rewritten) within the quiet period yields nothing.
    """
    patterns = tuple(ignore_patterns)
    return ops.filter(lambda event: is_ready(event, patterns, root, polling=polling))
