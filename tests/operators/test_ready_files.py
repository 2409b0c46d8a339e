"""watched_files and ready_files: which events may become uploads, and which mean finished."""

from __future__ import annotations

import os

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from reactivex.testing.marbles import marbles_testing

from operators.debounce import debounce_per_path
from operators.model import EventKind, FileEvent, Priority
from operators.readiness import is_wanted, parts_below
from operators.ready_files import ready_files, watched_files
from tests.operators.events import OUTBOX, closed, created, deleted, found, modified, moved

PATTERNS = (".*", "*.part", "*.tmp", "*~", "*.swp")
CSV = "temp/2022-07-19/rpi4-11@2022-07-19.csv"
FINAL = CSV + ".final"
EVENTS = {
    "c": closed("audio/a.wav"),
    "n": created("audio/a.wav"),
    "m": modified("audio/a.wav"),
    "d": deleted("audio/a.wav"),
    "v": moved("audio/a.wav.part", "audio/a.wav"),
    "f": found("video/b.h264"),
    "D": created("audio/2022-07-19", is_directory=True),
    "M": modified("audio", is_directory=True),
    "h": closed("audio/.a.wav.swp"),
    "p": closed("audio/a.wav.part"),
    "t": closed("audio/a.tmp"),
    "~": closed("audio/a.wav~"),
    "T": closed(".Trash-1000/files/a.wav"),
    "s": closed(CSV),
    "S": closed(FINAL),
    "F": moved(CSV, FINAL),
    "x": FileEvent(EventKind.DELETED, f"{OUTBOX}/{CSV}"),
    "g": deleted("audio/a.wav.part"),
}


def ready(polling: bool = False):
    return ready_files(PATTERNS, root=OUTBOX, polling=polling)


def test_closed_moved_found_and_created_are_ready_modified_and_deleted_are_not():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-c-n-m-d-v-f-|", lookup=EVENTS)
        expected = exp("-c-n-----v-f-|", lookup=EVENTS)
        assert start(events.pipe(ready())) == expected


def test_with_polling_modified_is_ready_too():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-c-n-m-d-|", lookup=EVENTS)
        expected = exp("-c-n-m---|", lookup=EVENTS)
        assert start(events.pipe(ready(polling=True))) == expected


def test_directories_and_ignored_names_never_pass():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-D-M-h-p-t-~-T-c-|", lookup=EVENTS)
        expected = exp("---------------c-|", lookup=EVENTS)
        assert start(events.pipe(ready(polling=True))) == expected


def test_a_bare_csv_never_passes_its_final_does():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-s-S-F-|", lookup=EVENTS)
        expected = exp("---S-F-|", lookup=EVENTS)
        assert start(events.pipe(ready())) == expected


def test_errors_propagate():
    error = OSError("disk")
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-c-m-#", lookup=EVENTS, error=error)
        expected = exp("-c---#", lookup=EVENTS, error=error)
        assert start(events.pipe(ready())) == expected


def test_watched_files_splits_a_move_into_deleted_source_and_moved_destination():
    into_place = moved("audio/a.wav", "video/a.wav")
    lookup = {"v": into_place, "d": deleted("audio/a.wav")}
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-v-----|", lookup=lookup)
        expected = exp("-(d,v)-|", lookup=lookup)  # a group takes its width in time
        assert start(events.pipe(watched_files(PATTERNS, root=OUTBOX))) == expected


def test_watched_files_drops_what_can_never_be_uploaded_and_keeps_the_rest():
    # v: a.wav.part -> a.wav: the ignored source's deletion is dropped, only the move in stays.
    # F: x.csv -> x.csv.final: the bare csv's deletion is dropped too.
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-D-h-p-s-v-F-m-d-|", lookup=EVENTS)
        expected = exp("---------v-F-m-d-|", lookup=EVENTS)
        assert start(events.pipe(watched_files(PATTERNS, root=OUTBOX))) == expected


def test_watched_files_propagates_errors():
    error = RuntimeError("observer died")
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-c-#", lookup=EVENTS, error=error)
        expected = exp("-c-#", lookup=EVENTS, error=error)
        assert start(events.pipe(watched_files(PATTERNS, root=OUTBOX))) == expected


def chain(polling: bool = False, duetime: float = 3):
    def operator(source):
        return source.pipe(
            watched_files(PATTERNS, root=OUTBOX),
            debounce_per_path(duetime),
            ready_files(PATTERNS, root=OUTBOX, polling=polling),
        )

    return operator


def test_csv_growing_all_day_then_renamed_to_final_gives_the_final_only():
    lookup = {"m": modified(CSV), "s": closed(CSV), "F": moved(CSV, FINAL)}
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-m-s-----m-s-F-------|", lookup=lookup)
        expected = exp("----------------F----|", lookup=lookup)
        assert start(events.pipe(chain())) == expected


def test_a_deletion_cancels_the_pending_upload():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-n-m-c-d-------|", lookup=EVENTS)
        expected = exp("---------------|", lookup=EVENTS)
        assert start(events.pipe(chain())) == expected


def test_moving_a_closed_file_away_cancels_it_and_readies_the_destination():
    lookup = {"c": closed("audio/a.wav"), "v": moved("audio/a.wav", "audio/b.wav")}
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-c-v-------|", lookup=lookup)
        expected = exp("------v----|", lookup=lookup)
        assert start(events.pipe(chain())) == expected


def test_a_write_resumed_after_close_waits_for_the_next_close():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-c-m---m---c-------|", lookup=EVENTS)
        expected = exp("--------------c----|", lookup=EVENTS)
        assert start(events.pipe(chain())) == expected


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        (f"{OUTBOX}/audio/2022-07-19/x.wav", True),
        (f"{OUTBOX}/.hidden/x.wav", False),
        (f"{OUTBOX}/audio/x.wav.part", False),
        (f"{OUTBOX}/{CSV}", False),
        (f"{OUTBOX}/{FINAL}", True),
        # Only the segments below the outbox count: a hidden folder above it is fine.
        ("/home/bee/.local/outbox/audio/x.wav", True),
    ],
)
def test_is_wanted(path, wanted):
    root = "/home/bee/.local/outbox" if path.startswith("/home") else OUTBOX
    assert is_wanted(path, PATTERNS, root) is wanted


@given(
    st.lists(st.sampled_from(["a", "b.wav", ".h", "..", ".", "", "x y"]), max_size=5),
    st.sampled_from(["/o", "/o/", "/"]),
)
def test_parts_below_agrees_with_relpath(segments, root):
    path = root.rstrip("/") + "/" + "/".join(segments)
    relative = os.path.relpath(path, root)
    outside = relative in (".", "..") or relative.startswith("../")
    assert parts_below(path, root) == (None if outside else tuple(relative.split("/")))


def test_watched_files_turns_a_failure_into_on_error_not_an_exception():
    """An exception escaping on_next would kill the scheduler thread that delivered the event."""
    broken = FileEvent(EventKind.CLOSED, None)  # type: ignore[arg-type]
    with marbles_testing() as (start, cold, _hot, _exp):
        results = start(cold("-c-x-c-|", lookup={**EVENTS, "x": broken}).pipe(watched_files(PATTERNS, root=OUTBOX)))
    assert [(m.time, m.value.kind) for m in results] == [(201.0, "N"), (203.0, "E")]


UPPER = {
    "s": closed("temp/2022-07-19/rpi4-11@2022-07-19.CSV"),
    "S": closed("temp/2022-07-19/rpi4-11@2022-07-19.CSV.FINAL"),
    "p": closed("audio/a.WAV.PART"),
    "t": closed("audio/a.TMP"),
    "o": FileEvent(EventKind.DAY_FILE, f"{OUTBOX}/{CSV}", priority=Priority.BACKFILL),
    "O": FileEvent(EventKind.DAY_FILE, f"{OUTBOX}/temp/2022-07-19/rpi4-11@2022-07-19.CSV", priority=Priority.BACKFILL),
}


def test_extension_rules_ignore_case_a_growing_CSV_and_a_PART_never_pass_a_FINAL_does():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-s-S-p-t-|", lookup=UPPER)
        expected = exp("---S-----|", lookup=UPPER)
        assert start(events.pipe(watched_files(PATTERNS, root=OUTBOX), ready())) == expected


def test_a_bare_csv_found_as_its_days_file_passes_in_any_case():
    with marbles_testing() as (start, cold, _hot, exp):
        events = cold("-o-O-|", lookup=UPPER)
        expected = exp("-o-O-|", lookup=UPPER)
        assert start(events.pipe(ready())) == expected


def _parts_below_as_first_written(path: str, root: str) -> tuple[str, ...] | None:
    """`parts_below` before its root's prefix was kept (`_absolute_prefix`): the reference."""
    prefix = root if root.endswith(os.sep) else root + os.sep
    if path.startswith(prefix) and os.path.isabs(root):
        parts = tuple(path[len(prefix) :].split(os.sep))
        if "" not in parts and os.curdir not in parts and os.pardir not in parts:
            return parts
    try:
        relative = os.path.relpath(path, root)
    except ValueError:
        return None
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        return None
    return tuple(relative.split(os.sep))


_SEGMENTS = st.sampled_from(["", ".", "..", "o", "ox", "x", "a.wav"])


@example(path="/ox/a.wav", root="/o")
@example(path="/o/a.wav", root="/o/")
@example(path="/a.wav", root="/")
@given(path=st.lists(_SEGMENTS, max_size=4).map("/".join), root=st.lists(_SEGMENTS, max_size=3).map("/".join))
def test_parts_below_answers_as_first_written(path, root):
    assert parts_below(path, root) == _parts_below_as_first_written(path, root)
