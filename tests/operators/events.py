"""Short constructors for the events of the marble tests (jobs: tests.helpers.job)."""

from __future__ import annotations

from operators.model import EventKind, FileEvent, Priority
from tests.helpers import OUTBOX


def _path(name: str) -> str:
    return name if name.startswith("/") else f"{OUTBOX}/{name}"


def closed(name: str) -> FileEvent:
    return FileEvent(EventKind.CLOSED, _path(name))


def created(name: str, *, is_directory: bool = False) -> FileEvent:
    return FileEvent(EventKind.CREATED, _path(name), is_directory)


def modified(name: str, *, is_directory: bool = False) -> FileEvent:
    return FileEvent(EventKind.MODIFIED, _path(name), is_directory)


def deleted(name: str) -> FileEvent:
    return FileEvent(EventKind.DELETED, _path(name))


def moved(src: str, dest: str, *, is_directory: bool = False) -> FileEvent:
    return FileEvent(EventKind.MOVED, _path(dest), is_directory, src_path=_path(src))


def found(name: str) -> FileEvent:
    return FileEvent(EventKind.FOUND, _path(name), priority=Priority.BACKFILL)
