"""Which file events may become uploads, and which mean "this file is finished".

Two steps, split around the per-path debounce so that a deletion can cancel a pending upload:

- `watched_files` (before the debounce) drops what can never be uploaded (directories, ignored
  names, a bare `.csv`) and splits a move into DELETED(source) + MOVED(destination).
- `ready_files` (after the debounce, on each path's last event of a quiet period) keeps the kinds
  that mean finished: CLOSED, MOVED (in), FOUND and DAY_FILE (backfill) and CREATED (inotify
  reports a file moved in from outside the watch, or written into a new folder before its watch
  existed, as Created only); with the polling observer also MODIFIED, which never sees Closed.

The rules themselves (`is_wanted`, `is_ready`) are `operators.readiness`'s: the scans use them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from reactivex import Observable, abc
from reactivex import operators as ops

from operators.model import EventKind, FileEvent
from operators.readiness import ready_rule, wanted_rule


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
    wanted = wanted_rule(ignore_patterns, root)

    def keep(event: FileEvent) -> bool:
        return not event.is_directory and wanted(event.path, False)

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
    return ops.filter(ready_rule(ignore_patterns, root, polling=polling))
