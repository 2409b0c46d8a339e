"""The watch source on real observers: events flow from subscription, disposal joins, limits fall back."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify import InotifyObserver

from operators.model import EventKind, FileEvent
from pipeline.outbox.lock import STATE_FOLDER
from pipeline.sink.journal import DayJournal
from pipeline.stream import observers
from pipeline.stream.watch import start_observer, stop_observer, watch_source
from tests.helpers import wait_until, write_file


def watchdog_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if "watchdog" in type(t).__module__}


@pytest.mark.parametrize("kind", ["inotify", "polling"])
def test_events_flow_from_subscription_and_disposal_stops_and_joins(box, record, kind):
    before = watchdog_threads()
    recorder = record(watch_source(str(box), kind, 0.05))
    # No sleep: subscribing returned with the observer running.
    target = write_file(box / "audio" / "a.wav", b"abc")
    wait_until(lambda: any(e.path == str(target) and not e.is_directory for e in recorder.items))
    assert watchdog_threads() - before
    recorder.dispose()
    assert not watchdog_threads() - before
    count = len(recorder.items)
    write_file(box / "after.wav", b"x")
    write_file(box / "sentinel.wav", b"x")
    assert len(recorder.items) == count


class Heard(FileSystemEventHandler):
    """Every event an observer dispatches: what would cross watchdog's threads into the handler."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.kinds: list[tuple[str, str]] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.paths += [os.fsdecode(event.src_path), *([os.fsdecode(event.dest_path)] if event.dest_path else [])]
        self.kinds.append((event.event_type, os.fsdecode(event.src_path)))


@pytest.mark.parametrize("kind", ["inotify", "polling"])
def test_the_sinks_delete_of_a_delivered_file_reaches_no_observer(box, kind):
    heard = Heard()
    observer = start_observer(kind, str(box), heard, 0.05)
    try:
        delivered = write_file(box / "audio" / "a.wav", b"sent")
        other = write_file(box / "audio" / "b.wav", b"waiting")
        wait_until(lambda: str(delivered) in heard.paths and str(other) in heard.paths, timeout=10)
        time.sleep(0.2)  # both settled: later polls see no change of them
        heard.kinds.clear()
        delivered.unlink()  # what the sink does once the server holds a verified copy
        with open(other, "ab") as handle:  # a change heard after the deletion would have been
            handle.write(b" and growing")
        wait_until(lambda: ("modified", str(other)) in heard.kinds, timeout=10)
    finally:
        stop_observer(observer)
    assert [event for event in heard.kinds if event[0] == "deleted"] == []


@pytest.mark.parametrize("kind", ["inotify", "polling"])
def test_the_state_folder_reaches_no_observer_while_the_journals_are_written(box, kind):
    state = box / STATE_FOLDER
    (state / "manifests").mkdir(parents=True)  # as the lock made it before the watch started
    heard = Heard()
    observer = start_observer(kind, str(box), heard, 0.05, (STATE_FOLDER,))
    try:
        journal = DayJournal(str(state / "manifests"), "station/2026-12-01")
        for index in range(3):
            journal.append(f"audio/a{index}.wav", "ab" * 32, 4096)
        write_file(state / "later" / "deeper" / "x.wav", b"made after the start")
        write_file(box / "audio" / "2026-12-01" / "a.wav", b"abc")  # a folder made after the start: heard
        wait_until(lambda: str(box / "audio" / "2026-12-01" / "a.wav") in heard.paths, timeout=10)
        time.sleep(0.2)  # a poll or two more: whatever the state folder would have given is in by now
    finally:
        stop_observer(observer)
    assert [path for path in heard.paths if path.startswith(str(state))] == []


def test_with_a_watchdog_whose_internals_differ_the_state_folder_still_stops_at_the_handler(box, record, monkeypatch):
    monkeypatch.setattr(observers, "_pruning_inotify_observer", lambda: None)  # as with watchdog 4-6
    state = box / STATE_FOLDER
    (state / "manifests").mkdir(parents=True)
    (box / "audio").mkdir()
    recorder = record(watch_source(str(box), "inotify", 1.0, unwatched=(STATE_FOLDER,)))
    DayJournal(str(state / "manifests"), "station/2026-12-01").append("audio/a.wav", "ab" * 32, 4096)
    write_file(box / "audio" / "b.wav", b"abc")
    wait_until(lambda: FileEvent(EventKind.CLOSED, str(box / "audio" / "b.wav")) in recorder.items, timeout=10)
    assert [event for event in recorder.items if event.path.startswith(str(state))] == []


def test_inotify_reports_closed_and_the_move_into_place(box, record):
    recorder = record(watch_source(str(box), "inotify", 1.0))
    write_file(box / "a.wav.part", b"abc")
    os.replace(box / "a.wav.part", box / "a.wav")
    wait_until(lambda: any(e.kind is EventKind.MOVED for e in recorder.items))
    files = [e for e in recorder.items if not e.is_directory]
    assert FileEvent(EventKind.CLOSED, str(box / "a.wav.part")) in files
    assert files[-1] == FileEvent(EventKind.MOVED, str(box / "a.wav"), src_path=str(box / "a.wav.part"))


def test_the_uploaders_observer_pairs_moves_within_the_outbox_and_not_those_from_outside(box, tmp_path, record):
    (box / "audio").mkdir()
    (box / "video").mkdir()
    recorder = record(watch_source(str(box), "inotify", 1.0, unwatched=(STATE_FOLDER,)))
    outside = write_file(tmp_path / "elsewhere" / "in.wav", b"from outside")
    for index in range(50):  # events waiting in watchdog's queue while the moves come
        write_file(box / "audio" / f"burst-{index}.wav", b"x")
    write_file(box / "audio" / "a.wav.part", b"abc")
    os.replace(box / "audio" / "a.wav.part", box / "audio" / "a.wav")
    os.replace(outside, box / "audio" / "in.wav")
    os.rename(box / "video", box / "moved")  # a folder moved within: its watch follows it
    write_file(box / "moved" / "b.h264", b"abc")
    wait_until(lambda: FileEvent(EventKind.CLOSED, str(box / "moved" / "b.h264")) in recorder.items, timeout=10)
    files = [event for event in recorder.items if not event.is_directory]
    audio = str(box / "audio")
    assert FileEvent(EventKind.MOVED, f"{audio}/a.wav", src_path=f"{audio}/a.wav.part") in files
    assert [event for event in files if event.path.endswith("in.wav")] == [
        FileEvent(EventKind.CREATED, f"{audio}/in.wav")
    ]
    assert len({event.path for event in files if "burst-" in event.path and event.kind is EventKind.CLOSED}) == 50


def test_a_missing_outbox_is_created_and_logged(tmp_path, record, caplog):
    missing = tmp_path / "not" / "yet"
    with caplog.at_level(logging.INFO, logger="beemon.stream.watch"):
        record(watch_source(str(missing), "inotify", 1.0))
    assert missing.is_dir()
    assert f"created the outbox {missing}" in caplog.text


def test_the_inotify_watch_limit_falls_back_to_polling_with_a_warning(box, record, caplog, monkeypatch):
    def limit_reached(self):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(InotifyObserver, "start", limit_reached)
    with caplog.at_level(logging.WARNING, logger="beemon.stream.watch"):
        recorder = record(watch_source(str(box), "inotify", 0.05))
    assert "polling every 0.05 s instead" in caplog.text
    target = write_file(box / "a.wav", b"abc")
    wait_until(lambda: any(e.path == str(target) for e in recorder.items))


def test_other_os_errors_are_not_hidden(box, monkeypatch):
    def denied(self):
        raise OSError(errno.EACCES, "permission denied")

    monkeypatch.setattr(InotifyObserver, "start", denied)
    with pytest.raises(OSError, match="permission denied"):
        watch_source(str(box), "inotify", 1.0).subscribe()


def test_an_unknown_observer_kind_is_refused_at_once(box):
    with pytest.raises(ValueError, match="observer must be one of"):
        watch_source(str(box), "fsevents", 1.0)
