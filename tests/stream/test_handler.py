"""UploadHandler: watchdog's events become the stream's FileEvents, and a failure never escapes the handler."""

from __future__ import annotations

from watchdog.events import (
    DirCreatedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
)

from operators.model import EventKind, FileEvent
from pipeline.stream.handler import UploadHandler


class ListObserver:
    def __init__(self, fail: bool = False) -> None:
        self.items: list[FileEvent] = []
        self.errors: list[Exception] = []
        self.fail = fail

    def on_next(self, item: FileEvent) -> None:
        if self.fail:
            raise RuntimeError("downstream bug")
        self.items.append(item)

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def on_completed(self) -> None:
        pass


def test_handler_translates_watchdog_events():
    sink = ListObserver()
    handler = UploadHandler(sink)
    handler.dispatch(FileClosedEvent("/o/a.wav"))
    handler.dispatch(FileMovedEvent("/o/a.part", "/o/a.wav"))
    handler.dispatch(FileCreatedEvent("/o/b.wav"))
    assert sink.items == [
        FileEvent(EventKind.CLOSED, "/o/a.wav"),
        FileEvent(EventKind.MOVED, "/o/a.wav", src_path="/o/a.part"),
        FileEvent(EventKind.CREATED, "/o/b.wav"),
    ]


def test_handler_never_raises_it_hands_the_failure_to_on_error(caplog):
    sink = ListObserver(fail=True)
    UploadHandler(sink).on_closed(FileClosedEvent("/o/a.wav"))
    assert [str(e) for e in sink.errors] == ["downstream bug"]
    assert "failed to forward" in caplog.text


def test_events_inside_an_ignored_folder_go_nowhere_but_a_move_out_of_it_does():
    sink = ListObserver()
    handler = UploadHandler(sink, ignored_folders=["/o/.beemon"])
    handler.dispatch(DirCreatedEvent("/o/.beemon"))
    handler.dispatch(FileModifiedEvent("/o/.beemon/manifests/day.journal"))
    handler.dispatch(FileClosedEvent("/o/.beemon/manifests/day.journal"))
    handler.dispatch(FileMovedEvent("/o/.beemon/a.part", "/o/.beemon/a.wav"))
    handler.dispatch(FileMovedEvent("/o/.beemon/b.wav", "/o/audio/b.wav"))
    handler.dispatch(FileDeletedEvent("/o/audio/a.wav"))
    handler.dispatch(FileClosedEvent("/o/.beemonish/c.wav"))
    assert sink.items == [
        FileEvent(EventKind.MOVED, "/o/audio/b.wav", src_path="/o/.beemon/b.wav"),
        FileEvent(EventKind.DELETED, "/o/audio/a.wav"),
        FileEvent(EventKind.CLOSED, "/o/.beemonish/c.wav"),
    ]
