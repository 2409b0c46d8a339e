"""The watch source: a watchdog observer on the outbox, as an `Observable[FileEvent]`.

`UploadHandler` (pipeline.stream.handler) turns the observer's events into `FileEvent`s.

Folders named in `unwatched` right below the outbox (the uploader's state folder) are not watched
at all (`pipeline.stream.observers`), and whatever still comes from them is dropped by the handler.

The outbox is resolved once (`outbox_root`: a symlinked outbox is watched at its target, so its new
day folders are watched too), and guarded while running (`_GuardedWatch`): an outbox deleted and
created again, or a watch that stopped, is re-armed with one WARNING line, and the files already in
the new folder are reported as found.
"""

from __future__ import annotations

import errno
import logging
import os
import stat as stat_module
import threading
from collections.abc import Sequence

from reactivex import Observable, abc
from reactivex.disposable import Disposable
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)
from watchdog.observers.api import BaseObserver

from operators.choices import OBSERVER_KINDS
from operators.model import EventKind, FileEvent
from pipeline.stream.handler import UploadHandler
from pipeline.stream.observers import new_observer, unwatched_paths
from pipeline.stream.scan import iter_outbox, outbox_root

log = logging.getLogger("beemon.stream.watch")

#: inotify_add_watch / inotify_init errors that mean "too many watches or instances": poll instead.
WATCH_LIMIT_ERRNOS = frozenset({errno.ENOSPC, errno.EMFILE})
#: The events the stream uses. Leaving out opens, read-only closes and folder changes keeps them
#: out of the kernel queue: the sink's reads and the scans' listings would otherwise double it.
#: Deletions too: the sink deletes every file it delivered, one event per file that could only be
#: dropped, and a file deleted during its quiet period gives no job without one (its stat finds it
#: gone). A move within the outbox still ends its source's wait (`watched_files` splits it).
#: (New folders are still watched: watchdog adds IN_CREATE for recursive watches, and a deleted
#: outbox still ends the emitter: IN_DELETE_SELF is always asked.)
EVENT_FILTER = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileMovedEvent]
#: How often the guard checks that the outbox is still the folder being watched (one stat).
GUARD_SECONDS = 1.0


def ensure_outbox(outbox: str) -> None:
    """Create the outbox if it is missing: the station may not have written anything yet."""
    if not os.path.isdir(outbox):
        os.makedirs(outbox, exist_ok=True)
        log.info("created the outbox %s", outbox)


def _start(
    kind: str, outbox: str, handler: UploadHandler, polling_interval: float, unwatched: Sequence[str]
) -> BaseObserver:
    observer = new_observer(kind, polling_interval, outbox, unwatched)
    observer.schedule(handler, outbox, recursive=True, event_filter=EVENT_FILTER)
    observer.start()
    return observer


def start_observer(
    kind: str, outbox: str, handler: UploadHandler, polling_interval: float, unwatched: Sequence[str] = ()
) -> BaseObserver:
    """Start a recursive observer, blind to the folders named in `unwatched` right below `outbox`; if
    inotify's watch or instance limit is hit, poll instead (with a warning).

    A missed limit would otherwise mean a silent outbox; polling is slower but sees everything.
    """
    if kind not in OBSERVER_KINDS:
        raise ValueError(f"observer must be one of {OBSERVER_KINDS}, not {kind!r}")
    try:
        return _start(kind, outbox, handler, polling_interval, unwatched)
    except OSError as error:
        if kind != "inotify" or error.errno not in WATCH_LIMIT_ERRNOS:
            raise
        log.warning(
            "inotify cannot watch %s (%s): polling every %g s instead; raise fs.inotify.max_user_watches to fix",
            outbox,
            error.strerror or error,
            polling_interval,
        )
        return _start("polling", outbox, handler, polling_interval, unwatched)


def stop_observer(observer: BaseObserver) -> None:
    """Stop the observer and wait for its threads, unless called from the observer's own thread.

    An error in watchdog's own teardown (its watch bookkeeping under folder churn) is logged, not
    raised: the stop goes on (exit code 0), and so does a re-arm for a replaced outbox.
    """
    try:
        observer.stop()
    except Exception as error:
        log.debug("the watch's observer did not stop cleanly (%s: %s)", type(error).__name__, error, exc_info=True)
    if observer.is_alive() and threading.current_thread() is not observer:
        observer.join()


def _identity(path: str) -> tuple[int, int] | None:
    """(device, inode) of the folder at `path`, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat_module.S_ISDIR(st.st_mode) else None


def _deaf(observer: BaseObserver) -> bool:
    """Whether the observer stopped hearing: its thread ended, or its emitter did (inotify ends it when the
    watched folder itself is deleted)."""
    return not observer.is_alive() or any(not emitter.is_alive() for emitter in observer.emitters)


class _GuardedWatch:
    """One subscription's observer, and the thread that re-arms it when the outbox is replaced or the watch dies."""

    def __init__(
        self,
        root: str,
        kind: str,
        polling_interval: float,
        stream: abc.ObserverBase[FileEvent],
        guard_seconds: float,
        unwatched: Sequence[str] = (),
    ) -> None:
        self.root = root
        self.kind = kind
        self.polling_interval = polling_interval
        self.stream = stream
        self.guard_seconds = guard_seconds
        self.unwatched = tuple(unwatched)
        self.handler = UploadHandler(stream, ignored_folders=unwatched_paths(root, self.unwatched))
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.identity: tuple[int, int] | None = None
        self.observer: BaseObserver | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        ensure_outbox(self.root)
        self.identity = _identity(self.root)
        self.observer = start_observer(self.kind, self.root, self.handler, self.polling_interval, self.unwatched)
        if self.guard_seconds > 0:
            self.thread = threading.Thread(target=self._guard, name="outbox-guard", daemon=True)
            self.thread.start()

    def _guard(self) -> None:
        while not self.stopped.wait(self.guard_seconds):
            try:
                self.check()
            except Exception:  # never let the guard die: it is the watch's safety net
                log.exception("checking the outbox %s failed", self.root)

    def check(self) -> None:
        """Re-arm the watch if the outbox was replaced, is back, or the watch stopped hearing."""
        identity = _identity(self.root)
        with self.lock:
            if self.stopped.is_set():
                return
            observer = self.observer
            if identity is not None and identity == self.identity and observer is not None and not _deaf(observer):
                return
            if identity is None:
                if self.identity is not None:
                    log.warning("the outbox %s is gone: its files are watched again as soon as it is back", self.root)
                    self.identity = None
                    self._stop_observer()
                return
            if self.identity is None:
                why = "is back"
            elif identity != self.identity or (observer is not None and observer.is_alive()):
                # A live observer whose emitter ended: inotify saw the folder itself deleted (a new
                # one may even have the old inode number).
                why = "was replaced by a new folder"
            else:
                why = "stopped being watched (the watch thread ended)"
            self._stop_observer()
            self.observer = start_observer(self.kind, self.root, self.handler, self.polling_interval, self.unwatched)
            back = self.identity is None
            self.identity = identity
        (log.info if back else log.warning)("the outbox %s %s: watching it again", self.root, why)
        self._report_present_files()

    def _report_present_files(self) -> None:
        """What was written into the new folder before its watch existed: reported as found, live."""
        for _day, _mtime, path in iter_outbox(self.root):
            if self.stopped.is_set():
                return
            self.stream.on_next(FileEvent(EventKind.FOUND, path))

    def _stop_observer(self) -> None:
        observer, self.observer = self.observer, None
        if observer is not None:
            stop_observer(observer)

    def dispose(self) -> None:
        self.stopped.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join()
        with self.lock:
            self._stop_observer()


def watch_source(
    outbox: str,
    observer_kind: str = "inotify",
    polling_interval: float = 1.0,
    guard_seconds: float = GUARD_SECONDS,
    unwatched: Sequence[str] = (),
) -> Observable[FileEvent]:
    """File events under `outbox` (recursive, but nothing in the folders named in `unwatched` right
    below it), from subscription until disposal.

    Subscribing creates the outbox if needed and starts the observer before it returns, so that a
    scan started afterwards misses nothing; disposing stops the observer and joins its threads.
    Paths are absolute, under the resolved outbox (`outbox_root`), matching the backfill's. Every
    `guard_seconds` (0: never) the outbox is checked and the watch re-armed when needed (see
    `_GuardedWatch`).
    """
    if observer_kind not in OBSERVER_KINDS:
        raise ValueError(f"observer must be one of {OBSERVER_KINDS}, not {observer_kind!r}")
    root = outbox_root(outbox)

    def subscribe(
        observer: abc.ObserverBase[FileEvent], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        watch = _GuardedWatch(root, observer_kind, polling_interval, observer, guard_seconds, unwatched)
        watch.start()
        return Disposable(watch.dispose)

    return Observable(subscribe)
