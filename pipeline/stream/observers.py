"""The watchdog observers the watch starts: recursive, except for named folders right below the outbox.

The uploader's state folder (``<outbox>/.beemon``: the lock, the status file, the sink's manifest
journals) is written at every delivery. Watched, each of those writes would cross the kernel queue
and watchdog's three threads and the stream's thread only to be dropped there: about two events
per delivered file on top of the file's own two. So the folders named in `unwatched` get no
inotify watch at all, now or when they are made later (watchdog adds a watch for every new folder
of a recursive watch), and the polling observer's snapshots do not list them.

The same inotify observer pairs a file's IN_MOVED_TO with its IN_MOVED_FROM only when one may be
waiting (`_CookieGrouper`): watchdog looks for it through every event not yet taken by its emitter
thread, twice per file moved in, so a burst of files moved into the outbox cost it time growing
with the burst (some 80 % of its inotify thread in the 2,000-file bench).

The inotify part uses watchdog's internals (`InotifyWatchGroup._add_callback`, the one call that
adds a watch; the emitter's `_inotify` / `_inotify_fd`; the move grouper's methods); when they are
not as expected, the plain observer (or grouper) is used, which watches everything as before (the
handler drops those events).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Sequence
from functools import cache, partial
from typing import Any

from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver, PollingObserverVFS

log = logging.getLogger("beemon.stream.watch")

#: How long the inotify observer's dispatcher waits per turn; stopping does not wait for it.
DISPATCH_TIMEOUT = 0.5


def unwatched_paths(root: str, unwatched: Sequence[str]) -> tuple[str, ...]:
    """The absolute paths of the folders named in `unwatched`, right below `root`."""
    return tuple(os.path.join(root, name) for name in unwatched)


def new_observer(kind: str, polling_interval: float, root: str, unwatched: Sequence[str] = ()) -> BaseObserver:
    """An observer of `kind` ("inotify" or "polling") for `root`, blind to the folders named in `unwatched`."""
    skipped = unwatched_paths(root, unwatched)
    if kind == "polling":
        if not skipped:
            return PollingObserver(timeout=polling_interval)
        listdir = _listing_without(root, frozenset(skipped))
        return PollingObserverVFS(os.stat, listdir, polling_interval=polling_interval)
    from watchdog.observers.inotify import InotifyObserver  # Linux only

    if not skipped:
        return InotifyObserver(timeout=DISPATCH_TIMEOUT)
    observer_class = _pruning_inotify_observer()
    if observer_class is None:
        log.debug("watchdog's inotify internals are not as expected: the state folder is watched too")
        return InotifyObserver(timeout=DISPATCH_TIMEOUT)
    return observer_class(timeout=DISPATCH_TIMEOUT, pruned=tuple(os.fsencode(path) for path in skipped))


def _listing_without(root: str, skipped: frozenset[str]) -> Any:
    """`os.scandir`, except that the listing of `root` leaves out the `skipped` folders (with their contents)."""

    def listdir(path: str | None) -> Iterator[os.DirEntry[str]]:
        if path != root:
            return os.scandir(path)
        with os.scandir(path) as entries:
            return iter([entry for entry in entries if os.path.join(root, entry.name) not in skipped])

    return listdir


def _below(path: bytes, pruned: tuple[bytes, ...]) -> bool:
    return any(path == top or path.startswith(top + b"/") for top in pruned)


@cache
def _pruning_inotify_observer() -> type[BaseObserver] | None:
    """An `InotifyObserver` whose watch groups never add a watch below the pruned folders; None when
    watchdog's internals differ from what this relies on (checked once)."""
    try:
        return _build_pruning_observer()
    except Exception:  # an older or newer watchdog: watch everything rather than fail
        log.debug("cannot build the pruning inotify observer", exc_info=True)
        return None


def _build_pruning_observer() -> type[BaseObserver] | None:
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver, InotifyWatchGroup

    fields = {field.name for field in dataclasses.fields(InotifyWatchGroup)}
    expected = {"_inotify_fd", "path", "event_mask", "is_recursive", "follow_symlink"}
    methods = ("_add_callback", "_remove_watch_internally")
    if not expected <= fields or not all(callable(getattr(InotifyWatchGroup, name, None)) for name in methods):
        return None

    grouper = _cookie_grouper()

    @dataclasses.dataclass
    class PruningWatchGroup(InotifyWatchGroup):  # type: ignore[misc]
        """Adds no watch for the `pruned` folders nor anything below them."""

        pruned: tuple[bytes, ...] = ()

        def __post_init__(self) -> None:
            if grouper is not None:
                self._move_event_grouper = grouper()
            super().__post_init__()

        def _add_callback(self, path: bytes) -> None:
            if not _below(path, self.pruned):
                super()._add_callback(path)

        def _remove_watch_internally(self, wd: Any) -> None:
            """watchdog's, but a path whose entry went with another watch of it is no error: under folder
            churn (a day folder deleted and made again at once) two watches can name one path, and watchdog's
            raised KeyError at the second, aborting the teardown (stop: exit code 1; the outbox's re-arm)."""
            path = self._active_callbacks_by_watch.pop(wd, None)
            if path is not None and self._active_callbacks_by_path.get(path) == wd:
                del self._active_callbacks_by_path[path]

    class PruningEmitter(InotifyEmitter):  # type: ignore[misc]
        def __init__(self, *args: Any, pruned: tuple[bytes, ...] = (), **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pruned = pruned

        def on_thread_start(self) -> None:
            if not (hasattr(self, "_inotify") and hasattr(self, "_inotify_fd")):
                super().on_thread_start()  # internals changed: watch everything
                return
            # As InotifyEmitter.on_thread_start, with the pruning group.
            self._inotify = PruningWatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=self.watch.is_recursive,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                pruned=self._pruned,
            )

    class PruningInotifyObserver(InotifyObserver):  # type: ignore[misc]
        def __init__(self, *, timeout: float, pruned: tuple[bytes, ...]) -> None:
            super().__init__(timeout=timeout)
            if getattr(self, "_emitter_class", None) is InotifyEmitter:  # else internals changed: watch everything
                self._emitter_class = partial(PruningEmitter, pruned=pruned)

    return PruningInotifyObserver


def _cookie_grouper() -> type | None:
    """watchdog's move grouper, looking for a move's source only when its cookie was seen and not yet
    paired, read out or discarded; None when the grouper's methods are not as expected."""
    from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper, PathedInotifyEvent

    methods = ("put_event", "read_event", "_group_moved_to_event", "get_queued_moved_from_event")
    if not all(callable(getattr(InotifyMoveEventGrouper, name, None)) for name in methods):
        return None
    if not callable(getattr(InotifyMoveEventGrouper, "discard_pending_events", None)):
        return None

    class CookieGrouper(InotifyMoveEventGrouper):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            #: the cookies of the IN_MOVED_FROM events in the delayed queue (a set's add, discard and
            #: clear are atomic: the inotify thread adds, the emitter's thread reads events out)
            self._sources: set[int] = set()

        def put_event(self, event: Any) -> None:
            if event.ev.is_moved_from:
                self._sources.add(event.ev.cookie)
            super().put_event(event)

        def _group_moved_to_event(self, to_event: Any) -> Any:
            if to_event.ev.cookie not in self._sources:
                return to_event  # moved in from outside the watch: no source to look for
            grouped = super()._group_moved_to_event(to_event)
            self._sources.discard(to_event.ev.cookie)
            return grouped

        def get_queued_moved_from_event(self, cookie: int) -> Any:
            return super().get_queued_moved_from_event(cookie) if cookie in self._sources else None

        def read_event(self) -> Any:
            event = super().read_event()
            if isinstance(event, PathedInotifyEvent) and event.ev.is_moved_from:
                self._sources.discard(event.ev.cookie)  # unpaired: it leaves as a deletion
            return event

        def discard_pending_events(self) -> None:
            super().discard_pending_events()
            self._sources.clear()

    return CookieGrouper
