"""The values that flow through the pipeline: file events in, upload jobs out.

Plain frozen dataclasses, so they compare by value in marble tests and pickle to the sink process.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum, StrEnum
from operator import attrgetter
from typing import Any, SupportsIndex


class EventKind(StrEnum):
    """What happened to a path. `FOUND` is the backfill scan's: the file was there at a scan.

    `DAY_FILE` is the backfill's too: a past day's bare `.csv` whose `.final` never came, quiet for
    the orphan threshold, to be delivered as its day's file.
    """

    CREATED = "created"
    MODIFIED = "modified"
    CLOSED = "closed"
    MOVED = "moved"
    DELETED = "deleted"
    FOUND = "found"
    DAY_FILE = "day-file"


class Priority(IntEnum):
    """Live files go to the sink's primary queue, backfill to the secondary (the original's 0 / 1)."""

    LIVE = 0
    BACKFILL = 1

    def __reduce_ex__(self, protocol: SupportsIndex) -> str:
        """Pickled by its name (`Priority.LIVE`), found by pickle itself on the way back: by its value (the enum's
        default) unpickling calls the class, two Python calls in the sink for every job (as `Outcome` in the parent)."""
        return _PICKLED_PRIORITIES[self._name_]


#: What `Priority.__reduce_ex__` gives: a member's qualified name in its module.
_PICKLED_PRIORITIES = {priority.name: f"{Priority.__qualname__}.{priority.name}" for priority in Priority}


@dataclass(frozen=True, slots=True)
class FileEvent:
    """One filesystem event. `path` is the file it is about now (a move's destination)."""

    kind: EventKind
    path: str
    is_directory: bool = False
    src_path: str = ""
    priority: Priority = Priority.LIVE
    day_file: bool = False


@dataclass(frozen=True, slots=True)
class UploadJob:
    """One file to deliver: where it is, where it goes, and what it was when the job was made.

    `size` and `mtime_ns` let the sink verify the server's copy and refuse to delete a local file
    that changed after the job was taken. `day_file`: a bare `X.csv` sent as its day's file (its
    `.final` never came, or is shorter), removed once delivered like a `.final`.
    `into_folder`: `remote_path` may name an existing remote folder, and then the file goes inside
    it under its own name (the original API's `queue_upload` took "the destination directory/file
    path"); the sink asks the server before the upload.
    """

    local_path: str
    remote_path: str
    size: int
    mtime_ns: int
    priority: Priority = Priority.LIVE
    day_file: bool = False
    into_folder: bool = False

    def __reduce__(self) -> tuple[type[UploadJob], tuple[Any, ...]]:
        """Pickled as its fields in order (one job crosses to the sink process per file): the default state of a
        slots dataclass walks `dataclasses.fields` on every pickle and unpickle."""
        return (UploadJob, _JOB_FIELDS(self))


_JOB_FIELDS = attrgetter(*(f.name for f in fields(UploadJob)))
