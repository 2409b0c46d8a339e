"""`UploadHandler`: the watchdog handler of the original API, and the watch source's way into the stream.

It keeps the original's name and methods; instead of queueing uploads itself it forwards every
event into the stream, where the operators decide what is ready (or, given an `UploadHelper` as
the original was, queues each finished file onto it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from reactivex import abc
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from operators.choices import DEFAULT_IGNORE_PATTERNS
from operators.job_mapping import job_for
from operators.model import EventKind, FileEvent
from operators.readiness import is_ready
from pipeline.outbox.file_state import finished_file_stat

if TYPE_CHECKING:
    from operators.model import UploadJob
    from pipeline.ftp.params import FtpParams

#: The handler's lines keep the watch's logger name, which they had before the handler had a module of its own.
log = logging.getLogger("beemon.stream.watch")


class UploadHelperLike(Protocol):
    """What `UploadHandler(upload_helper)` uses of the sink's `UploadHelper`, named here because the
    stream and the sink are sibling layers that do not import each other."""

    outbox: str | None
    station: str
    ftp: FtpParams

    def submit(self, job: UploadJob) -> None: ...


class UploadHandler(FileSystemEventHandler):
    """The original API's watchdog handler; never raises.

    `UploadHandler(observer)` (the stream's): forwards every file event into the stream, where the
    operators decide what is ready. `UploadHandler(upload_helper)` (the original's): queues each
    finished file onto that `UploadHelper`'s primary queue, mapped to its remote path with the
    helper's outbox, station and remote root. Where the original queued a file at its creation,
    still empty, this queues it once it is finished: closed after writing, moved in, or created
    whole (not open for writing any more); a partial file never reaches the server.

    An exception escaping a watchdog handler kills the observer thread, and with it every later
    event; so a failure is logged (and, for the stream, handed to its `on_error`) instead.

    Events inside `ignored_folders` (absolute paths: the uploader's state folder) go nowhere: dropped
    here, in watchdog's thread, they cost the stream nothing. A move out of one still counts.
    """

    def __init__(
        self, observer: abc.ObserverBase[FileEvent] | UploadHelperLike, *, ignored_folders: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self._ignored = frozenset(ignored_folders)
        self._ignored_prefixes = tuple(os.path.join(folder, "") for folder in self._ignored)
        self._observer: abc.ObserverBase[FileEvent] | None = None
        self._helper: UploadHelperLike | None = None
        if hasattr(observer, "on_next"):
            self._observer = observer  # type: ignore[assignment]
        elif hasattr(observer, "submit") and hasattr(observer, "queue_upload"):
            self._helper = observer  # type: ignore[assignment]
            if not getattr(observer, "outbox", None):
                raise ValueError(
                    "UploadHandler(upload_helper) needs the helper's outbox to map paths: build it as UploadHelper()"
                    " (from the configuration) or give UploadHelper(..., outbox=..., station=...)"
                )
            log.info(
                "UploadHandler(upload_helper): files are queued once finished (closed, moved in, or created whole),"
                " not at their creation as the original did"
            )
        else:
            raise TypeError(f"UploadHandler takes an UploadHelper or an observer, not {type(observer).__name__}")

    def on_closed(self, event: FileSystemEvent) -> None:
        """A file opened for writing was closed: usually the moment it is finished."""
        self._forward(EventKind.CLOSED, event)

    def on_created(self, event: FileSystemEvent) -> None:
        """A file or folder appeared (also a file moved in from outside the outbox)."""
        self._forward(EventKind.CREATED, event)

    def on_moved(self, event: FileSystemEvent) -> None:
        """A rename inside the outbox, e.g. the atomic save of a finished file into place."""
        self._forward(EventKind.MOVED, event)

    def on_modified(self, event: FileSystemEvent) -> None:
        """Written to; with the polling observer the only sign that a file is still growing."""
        self._forward(EventKind.MODIFIED, event)

    def on_deleted(self, event: FileSystemEvent) -> None:
        """Gone: cancels an upload still waiting for its quiet period."""
        self._forward(EventKind.DELETED, event)

    def _in_ignored_folder(self, path: bytes | str) -> bool:
        path = os.fsdecode(path)
        return path in self._ignored or path.startswith(self._ignored_prefixes)

    def _forward(self, kind: EventKind, event: FileSystemEvent) -> None:
        try:
            if (
                self._ignored
                and self._in_ignored_folder(event.src_path)
                and (kind is not EventKind.MOVED or self._in_ignored_folder(event.dest_path))
            ):
                return
            if kind is EventKind.MOVED:
                file_event = FileEvent(
                    kind, os.fsdecode(event.dest_path), event.is_directory, src_path=os.fsdecode(event.src_path)
                )
            else:
                file_event = FileEvent(kind, os.fsdecode(event.src_path), event.is_directory)
            if self._helper is not None:
                self._queue(file_event)
            else:
                assert self._observer is not None
                self._observer.on_next(file_event)
        except Exception as error:
            log.exception("failed to forward %s", event)
            if self._observer is None:
                return
            try:
                self._observer.on_error(error)
            except Exception:
                log.exception("the stream's on_error failed too")

    def _queue(self, event: FileEvent) -> None:
        """The original's way: a finished, wanted file goes onto the helper's primary queue at once."""
        helper = self._helper
        assert helper is not None
        outbox = os.path.abspath(str(helper.outbox))
        if not is_ready(event, getattr(helper, "ignore_patterns", DEFAULT_IGNORE_PATTERNS), outbox):
            return
        job = job_for(
            event, outbox=outbox, remote_root=helper.ftp.remote_root, station=helper.station, stat=finished_file_stat
        )
        if job is not None:
            helper.submit(job)
