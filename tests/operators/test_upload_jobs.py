"""to_upload_jobs: ready files become UploadJobs with the remote mapping, a stat injected; ready_upload_jobs: the
stream's one operator for ready_files then to_upload_jobs."""

from __future__ import annotations

import os
from datetime import datetime
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reactivex.testing.marbles import marbles_testing

from operators.model import EventKind, FileEvent, Priority, UploadJob
from operators.readiness import ready_rule, wanted_rule
from operators.ready_files import ready_files, watched_files
from operators.upload_jobs import ready_upload_jobs, to_upload_jobs
from tests.operators.events import OUTBOX, closed, created, deleted, found, modified, moved

ROOT = "/usr/local/bee/appmais"
NOON_0719 = datetime.fromisoformat("2022-07-19T12:00:00+00:00").timestamp()
WAV = "audio/2022-07-19/rpi4-11@2022-07-19@14-30-00.wav"
FINAL = "temp/2022-07-19/rpi4-11@2022-07-19.csv.final"


def fake_stat(files: dict[str, int]):
    """A stat over an imaginary outbox: path -> size, all modified at noon on 2022-07-19."""

    def stat(path: str) -> SimpleNamespace | None:
        if path not in files:
            return None
        return SimpleNamespace(st_size=files[path], st_mtime=NOON_0719, st_mtime_ns=int(NOON_0719 * 1e9))

    return stat


def jobs(stat):
    return to_upload_jobs(OUTBOX, remote_root=ROOT, station="fallback", stat=stat)


def test_each_ready_file_becomes_a_job_with_size_mtime_priority_and_remote_path():
    stat = fake_stat({f"{OUTBOX}/{WAV}": 1234, f"{OUTBOX}/{FINAL}": 56, f"{OUTBOX}/scale/reading.bin": 7})
    events = {
        "w": closed(WAV),
        "f": moved("temp/2022-07-19/rpi4-11@2022-07-19.csv", FINAL),
        "b": found("scale/reading.bin"),
    }
    mtime_ns = int(NOON_0719 * 1e9)
    results = {
        "W": UploadJob(f"{OUTBOX}/{WAV}", f"{ROOT}/fallback/2022-07-19/audio/{os.path.basename(WAV)}", 1234, mtime_ns),
        "F": UploadJob(f"{OUTBOX}/{FINAL}", f"{ROOT}/fallback/2022-07-19/temp/rpi4-11@2022-07-19.csv", 56, mtime_ns),
        "B": UploadJob(
            f"{OUTBOX}/scale/reading.bin",
            f"{ROOT}/fallback/2022-07-19/scale/reading.bin",
            7,
            mtime_ns,
            Priority.BACKFILL,
        ),
    }
    with marbles_testing() as (start, cold, _hot, exp):
        source = cold("-w-f-b-|", lookup=events)
        expected = exp("-W-F-B-|", lookup=results)
        assert start(source.pipe(jobs(stat))) == expected


def test_vanished_files_unmappable_names_and_paths_outside_the_outbox_are_skipped():
    stat = fake_stat({f"{OUTBOX}/audio/x.csv": 1, "/elsewhere/y.wav": 1, f"{OUTBOX}/audio/z.wav": 3})
    events = {
        "g": closed("audio/gone.wav"),
        "c": closed("audio/x.csv"),
        "o": closed("/elsewhere/y.wav"),
        "z": closed("audio/z.wav"),
    }
    z = UploadJob(f"{OUTBOX}/audio/z.wav", f"{ROOT}/fallback/2022-07-19/audio/z.wav", 3, int(NOON_0719 * 1e9))
    with marbles_testing() as (start, cold, _hot, exp):
        source = cold("-g-c-o-z-|", lookup=events)
        expected = exp("-------z-|", lookup={"z": z})
        assert start(source.pipe(jobs(stat))) == expected


def test_errors_propagate():
    error = RuntimeError("upstream")
    with marbles_testing() as (start, cold, _hot, exp):
        source = cold("-g-#", lookup={"g": closed("audio/gone.wav")}, error=error)
        expected = exp("---#", error=error)
        assert start(source.pipe(jobs(fake_stat({})))) == expected


def test_the_longer_of_a_final_and_its_csv_is_the_days_file_and_a_csv_found_alone_goes_under_its_own_name():
    csv = FINAL.removesuffix(".final")
    remote = f"{ROOT}/fallback/2022-07-19/temp/rpi4-11@2022-07-19.csv"
    mtime_ns = int(NOON_0719 * 1e9)
    shorter = fake_stat({f"{OUTBOX}/{FINAL}": 0, f"{OUTBOX}/{csv}": 900})
    whole = fake_stat({f"{OUTBOX}/{FINAL}": 900, f"{OUTBOX}/{csv}": 900})
    events = {"f": closed(FINAL), "o": FileEvent(EventKind.DAY_FILE, f"{OUTBOX}/{csv}", priority=Priority.BACKFILL)}
    results = {
        "C": UploadJob(f"{OUTBOX}/{csv}", remote, 900, mtime_ns, day_file=True),
        "F": UploadJob(f"{OUTBOX}/{FINAL}", remote, 900, mtime_ns),
        "O": UploadJob(f"{OUTBOX}/{csv}", remote, 900, mtime_ns, Priority.BACKFILL, day_file=True),
    }
    with marbles_testing() as (start, cold, _hot, exp):
        assert start(cold("-f-o-|", lookup=events).pipe(jobs(shorter))) == exp("-C-O-|", lookup=results)
    with marbles_testing() as (start, cold, _hot, exp):
        assert start(cold("-f-|", lookup=events).pipe(jobs(whole))) == exp("-F-|", lookup=results)


PATTERNS = (".*", "*.part")
MIX = {
    "w": closed(WAV),
    "f": moved("temp/2022-07-19/rpi4-11@2022-07-19.csv", FINAL),
    "b": found("scale/reading.bin"),
    "n": created("audio/new.wav"),
    "m": modified(WAV),
    "d": deleted(WAV),
    "p": closed("audio/a.wav.part"),
    "h": closed(".hidden/a.wav"),
    "D": created("audio/2022-07-20", is_directory=True),
    "s": closed("temp/2022-07-19/rpi4-11@2022-07-19.csv"),
    "o": FileEvent(EventKind.DAY_FILE, f"{OUTBOX}/temp/2022-07-19/rpi4-11@2022-07-19.csv", priority=Priority.BACKFILL),
    "g": closed("audio/gone.wav"),
    "x": closed("/elsewhere/y.wav"),
}
ON_DISK = fake_stat(
    {
        f"{OUTBOX}/{WAV}": 1234,
        f"{OUTBOX}/{FINAL}": 56,
        f"{OUTBOX}/scale/reading.bin": 7,
        f"{OUTBOX}/audio/new.wav": 8,
        f"{OUTBOX}/audio/a.wav.part": 9,
        f"{OUTBOX}/.hidden/a.wav": 10,
        f"{OUTBOX}/audio/2022-07-20": 4096,
        f"{OUTBOX}/temp/2022-07-19/rpi4-11@2022-07-19.csv": 11,
        "/elsewhere/y.wav": 12,
    }
)


@pytest.mark.parametrize("polling", [False, True])
def test_ready_upload_jobs_gives_what_ready_files_then_to_upload_jobs_give_at_the_same_times(polling):
    def both(source):
        return source.pipe(ready_files(PATTERNS, root=OUTBOX, polling=polling), jobs(ON_DISK))

    def one(source):
        return source.pipe(
            ready_upload_jobs(
                PATTERNS, outbox=OUTBOX, remote_root=ROOT, station="fallback", stat=ON_DISK, polling=polling
            )
        )

    marbles = "-w-f-b-n-m-d-p-h-D-s-o-g-x-w-m-|"
    outcomes = []
    for pipeline in (both, one):
        with marbles_testing() as (start, cold, _hot, _exp):
            outcomes.append(start(pipeline(cold(marbles, lookup=MIX))))
    assert outcomes[0] == outcomes[1]
    assert len([m for m in outcomes[1] if m.value.kind == "N"]) == (
        8 if polling else 6
    )  # w f b n o w, and m twice with polling


def test_ready_upload_jobs_turns_a_failing_stat_into_on_error_at_that_event():
    error = OSError("the card is gone")

    def broken(path: str):
        raise error

    operator = ready_upload_jobs(PATTERNS, outbox=OUTBOX, remote_root=ROOT, station="fallback", stat=broken)
    with marbles_testing() as (start, cold, _hot, exp):
        assert start(cold("-p-w-w-|", lookup=MIX).pipe(operator)) == exp("---#", error=error)
    with marbles_testing() as (start, cold, _hot, exp):
        upstream = RuntimeError("upstream")
        source = cold("-p-#", lookup=MIX, error=upstream)
        assert start(source.pipe(operator)) == exp("---#", error=upstream)


@pytest.mark.parametrize("polling", [False, True])
def test_after_watched_files_the_watched_rule_gives_the_same_jobs_at_the_same_times(polling):
    """`watched=True` (the live chain: its events passed `watched_files` with the same patterns and root) checks
    only their kinds: the same jobs as the whole rule, for every event of the mix."""

    def through(watched):
        def pipeline(source):
            return source.pipe(
                watched_files(PATTERNS, root=OUTBOX),
                ready_upload_jobs(
                    PATTERNS,
                    outbox=OUTBOX,
                    remote_root=ROOT,
                    station="fallback",
                    stat=ON_DISK,
                    polling=polling,
                    watched=watched,
                ),
            )

        return pipeline

    marbles = "-w-f-b-n-m-d-p-h-D-s-o-g-x-w-m-|"
    outcomes = []
    for pipeline in (through(False), through(True)):
        with marbles_testing() as (start, cold, _hot, _exp):
            outcomes.append(start(pipeline(cold(marbles, lookup=MIX))))
    assert outcomes[0] == outcomes[1]
    assert len([m for m in outcomes[1] if m.value.kind == "N"]) == (7 if polling else 5)


SEGMENTS = ("audio", "2022-07-19", ".hidden", "a.wav", "a.wav.part", "x.csv", "x.csv.final", "X.CSV.FINAL", "..", ".")


@given(
    kind=st.sampled_from(list(EventKind)),
    parts=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4),
    inside=st.booleans(),
    is_directory=st.booleans(),
    polling=st.booleans(),
)
def test_the_watched_rule_answers_as_the_whole_rule_for_every_event_watched_files_keeps(
    kind, parts, inside, is_directory, polling
):
    path = ("/".join((OUTBOX, *parts))) if inside else "/".join(("/elsewhere", *parts))
    event = FileEvent(kind, path, is_directory)
    whole = ready_rule(PATTERNS, OUTBOX, polling=polling)
    watched = ready_rule(PATTERNS, OUTBOX, polling=polling, watched=True)
    kept = not is_directory and wanted_rule(PATTERNS, OUTBOX)(path, False)
    if kept or kind is EventKind.DAY_FILE:
        assert watched(event) == whole(event)
