"""The backfill: scans on virtual time, young files, rescans, holding back, and 100,000 files."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from reactivex import operators as ops
from reactivex.testing import ReactiveTest, TestScheduler

from operators.model import EventKind, FileEvent, Priority
from pipeline.stream.backfill import BATCH, PACE_SECONDS, backfill_source
from pipeline.stream.jobs import build_job_stream
from pipeline.stream.scan import iter_outbox
from tests.helpers import wait_until, write_file
from tests.stream.test_scan import NOON_0719, PATTERNS, make_tree, touch


@pytest.fixture
def tree(box: Path) -> dict[str, Path]:
    return make_tree(box)


def test_an_unknown_order_is_refused(box):
    with pytest.raises(ValueError, match="order must be one of"):
        backfill_source(str(box), order="random")


def found(path: Path, priority: Priority = Priority.BACKFILL) -> FileEvent:
    return FileEvent(EventKind.FOUND, str(path), priority=priority)


def test_one_scan_then_completion_on_virtual_time(box, tree):
    scheduler = TestScheduler()
    source = backfill_source(str(box), ignore_patterns=PATTERNS, scheduler=scheduler)
    results = scheduler.start(lambda: source)
    names = ["loose", "v1", "deep", "a2", "a1", "scale"]
    assert results.messages == [ReactiveTest.on_next(200, found(tree[n])) for n in names] + [
        ReactiveTest.on_completed(200)
    ]


def test_rescans_repeat_on_the_scheduler_and_see_new_files(box):
    first = touch(box / "a.wav", NOON_0719)
    scheduler = TestScheduler()
    source = backfill_source(str(box), rescan_interval=300, scheduler=scheduler)
    second = box / "b.wav"
    scheduler.schedule_absolute(400, lambda *_: touch(second, NOON_0719 + 1))
    results = scheduler.start(lambda: source, disposed=900)
    assert results.messages == [
        ReactiveTest.on_next(200, found(first)),
        ReactiveTest.on_next(500, found(second)),
        ReactiveTest.on_next(500, found(first)),
        ReactiveTest.on_next(800, found(second)),
        ReactiveTest.on_next(800, found(first)),
    ]


def test_young_files_wait_until_quiet_then_come_out_as_backfill_or_if_written_since_the_start_as_live(box):
    """A file written just before the scan may be unfinished: skipped, then taken once quiet for min_age.

    One last written before the subscription is backlog (backfill); one written since is a recording
    made while watched (live, in case the watcher missed it).
    """
    old = touch(box / "old.wav", NOON_0719)
    before = touch(box / "before.wav", NOON_0719 + 1000)
    young = touch(box / "young.wav", NOON_0719 + 1000)
    scheduler = TestScheduler()
    now = [NOON_0719 + 1001]  # both are 1 s old at the scan

    def clock() -> float:
        return now[0]

    def written_again(*_):  # still being written at the first recheck
        os.utime(young, (NOON_0719 + 1003, NOON_0719 + 1003))
        now[0] = NOON_0719 + 1004

    scheduler.schedule_absolute(204, written_again)
    scheduler.schedule_absolute(206, lambda *_: now.__setitem__(0, NOON_0719 + 1006))
    source = backfill_source(str(box), min_age_seconds=2, scheduler=scheduler, clock=clock)
    results = scheduler.start(lambda: source)
    assert results.messages == [
        ReactiveTest.on_next(200, found(old)),
        ReactiveTest.on_next(204, found(before)),
        ReactiveTest.on_next(206, found(young, Priority.LIVE)),
        ReactiveTest.on_completed(206),
    ]


def test_a_young_file_deleted_before_it_is_quiet_is_dropped(box):
    young = touch(box / "young.wav", NOON_0719 + 1000)
    scheduler = TestScheduler()
    scheduler.schedule_absolute(201, lambda *_: young.unlink())
    source = backfill_source(str(box), min_age_seconds=2, scheduler=scheduler, clock=lambda: NOON_0719 + 1001)
    results = scheduler.start(lambda: source)
    assert results.messages == [ReactiveTest.on_completed(202)]


def test_the_scan_waits_between_batches_while_may_emit_says_no(box):
    """A consumer that holds enough pauses the scan (it asks again every PACE_SECONDS); nothing is lost."""
    paths = [touch(box / f"f{i:04d}.wav", NOON_0719 - i) for i in range(BATCH + 10)]
    scheduler = TestScheduler()
    emitted: list[FileEvent] = []

    def may_emit() -> bool:  # one batch before 300, then everything
        return not emitted or scheduler.clock >= 300

    source = backfill_source(str(box), scheduler=scheduler, may_emit=may_emit).pipe(ops.do_action(emitted.append))
    results = scheduler.start(lambda: source)
    assert [m.value.value for m in results.messages[:-1]] == [found(p) for p in paths]
    assert {m.time for m in results.messages[:BATCH]} == {200}
    assert {m.time for m in results.messages[BATCH:]} == {300}  # 200 + 400 x PACE_SECONDS
    assert PACE_SECONDS == 0.25


def test_the_job_stream_holds_its_backfill_back_while_told_to(box, record):
    for i in range(3 * BATCH):
        touch(box / "audio" / "2022-07-19" / f"rpi4-11@2022-07-19@{i:05d}.wav", NOON_0719 - i)
    hold, seen, asked = [True], [], [0]  # seen: the recorder, once subscribed; asked: may_emit's calls

    def may_emit() -> bool:
        asked[0] += 1
        return not hold[0] or bool(seen and len(seen[0].items) < 100)

    seen.append(record(build_job_stream(str(box), remote_root="/r", station="rpi4-11", backfill_may_emit=may_emit)))
    recorder = seen[0]
    wait_until(lambda: len(recorder.items) >= 100)
    turns = asked[0]
    wait_until(lambda: asked[0] >= turns + 2)  # two more turns of the pace, each answered "no"
    assert len(recorder.items) == BATCH  # one batch started below the mark, none after it
    hold[0] = False
    wait_until(lambda: len(recorder.items) == 3 * BATCH)
    recorder.dispose()


# -- 100,000 files ------------------------------------------------------------------------------

SENSORS = ("audio", "video", "temp", "cpu")
DATES = [f"2022-06-{day:02d}" for day in range(1, 26)]
PER_FOLDER = 1000  # 4 x 25 x 1,000 = 100,000 files
SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def big_outbox(tmp_path_factory) -> Iterator[Path]:
    """100,000 empty files, newest day written first (so it is not young at the scan).

    On tmpfs (/dev/shm) this takes about 1 s; on this machine's disk between 2.5 and 35 s,
    depending on its load, so the disk is used only where there is no tmpfs.
    """
    on_tmpfs = SHM.is_dir() and os.access(SHM, os.W_OK)
    base = Path(tempfile.mkdtemp(prefix="beemon-backfill-", dir=SHM)) if on_tmpfs else tmp_path_factory.mktemp("big")
    root = base / "outbox"
    for date in reversed(DATES):
        for sensor in SENSORS:
            folder = root / sensor / date
            folder.mkdir(parents=True)
            for i in range(PER_FOLDER):
                os.close(os.open(folder / f"rpi4-11@{date}@{i:05d}.wav", os.O_CREAT | os.O_WRONLY, 0o644))
    yield root
    if on_tmpfs:
        shutil.rmtree(base)


def test_first_job_of_100000_files_within_3_seconds_newest_first(big_outbox, record):
    started = time.monotonic()
    recorder = record(build_job_stream(str(big_outbox), remote_root="/r", station="rpi4-11", debounce_seconds=0.05))
    wait_until(lambda: recorder.items, timeout=3)
    elapsed = time.monotonic() - started
    first = recorder.items[0]
    newest_day = [str(p) for p in big_outbox.glob(f"*/{DATES[-1]}/*.wav")]
    newest_mtime = max(os.stat(p).st_mtime_ns for p in newest_day)
    assert elapsed < 3, elapsed
    assert first.priority is Priority.BACKFILL
    assert first.local_path in newest_day
    assert first.mtime_ns == newest_mtime
    assert f"/r/rpi4-11/{DATES[-1]}/" in first.remote_path
    # A live file is not stuck behind the backlog: the scan yields between batches.
    live = write_file(big_outbox / "live.wav", b"now")
    try:
        wait_until(lambda: any(job.local_path == str(live) for job in recorder.items), timeout=5)
        assert len(recorder.items) < 100_000
    finally:
        recorder.dispose()
        live.unlink()


def test_memory_follows_one_day_not_the_outbox(big_outbox):
    """Pulling 20,000 of the 100,000 files: the peak stays far below a list of every file (~25 MB)."""
    tracemalloc.start()
    try:
        scan = iter_outbox(str(big_outbox))
        dates = [next(scan)[0] for _ in range(20_000)]
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dates[0] == DATES[-1] and dates[-1] == DATES[-5]
    assert peak < 3_000_000, peak
