"""UploadHandler: watchdog's events become the stream's FileEvents, and a failure never escapes the handler."""

from __future__ import annotations

from watchdog.events import FileClosedEvent, FileCreatedEvent, FileMovedEvent

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
