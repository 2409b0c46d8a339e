"""The whole stream core on real observers (inotify and polling) over a real outbox.

Short quiet periods (0.1 s; polling every 0.05 s) keep these fast; they wait on conditions, and
where the outcome is "nothing", on a sentinel file written after the thing that must not count.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from reactivex.subject import Subject

from operators.choices import OBSERVER_KINDS
from operators.model import Priority, UploadJob
from pipeline.stream.jobs import build_job_stream
from pipeline.stream.scan_jobs import quiet_period, scan_jobs
from tests.helpers import wait_until, write_file

ROOT = "/srv/bee"
QUIET = 0.1
OBSERVERS = list(OBSERVER_KINDS)


def stream(box: Path, observer: str = "inotify", **overrides):
    options = {
        "remote_root": ROOT,
        "station": "st",
        "observer": observer,
        "polling_interval": 0.05,
        "debounce_seconds": QUIET,
        **overrides,
    }
    return build_job_stream(str(box), **options)


def expected_job(path: Path, remote: str, priority: Priority = Priority.LIVE) -> UploadJob:
    st = path.stat()
    return UploadJob(str(path), f"{ROOT}/{remote}", st.st_size, st.st_mtime_ns, priority)


def jobs_for(recorder, path: Path) -> list[UploadJob]:
    return [job for job in recorder.items if job.local_path == str(path)]


def settle(recorder, box: Path, name: str = "sentinel.bin") -> None:
    """Write a sentinel after the events under test and wait for its job: everything before it is done."""
    sentinel = write_file(box / name, b"s")
    wait_until(lambda: jobs_for(recorder, sentinel))
    time.sleep(quiet_period("polling", QUIET, 0.05))  # one more quiet period for any straggler


@pytest.mark.parametrize("observer", OBSERVERS)
def test_a_written_and_closed_file_becomes_one_live_job(box, record, observer):
    recorder = record(stream(box, observer))
    wav = write_file(box / "audio" / "2022-07-19" / "rpi4-11@2022-07-19@14-30-00.wav", b"x" * 1000)
    wait_until(lambda: jobs_for(recorder, wav))
    settle(recorder, box)
    assert jobs_for(recorder, wav) == [expected_job(wav, "st/2022-07-19/audio/rpi4-11@2022-07-19@14-30-00.wav")]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_an_atomic_save_gives_one_job_for_the_final_name_only(box, record, observer):
    recorder = record(stream(box, observer))
    (box / "video").mkdir()
    temp = write_file(box / "video" / "clip.h264.part", b"v" * 500)
    final = box / "video" / "clip.h264"
    os.replace(temp, final)
    wait_until(lambda: jobs_for(recorder, final))
    settle(recorder, box)
    mtime_date = time.strftime("%Y-%m-%d", time.localtime(final.stat().st_mtime))
    assert recorder.items[:-1] == [expected_job(final, f"st/{mtime_date}/video/clip.h264")]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_a_file_moved_in_from_outside_the_watch_gives_one_job(box, tmp_path, record, observer):
    recorder = record(stream(box, observer))
    outside = write_file(tmp_path / "elsewhere" / "rpi4-11@2022-07-19@01-00-00.wav", b"m" * 321)
    inside = box / "rpi4-11@2022-07-19@01-00-00.wav"
    os.rename(outside, inside)
    wait_until(lambda: jobs_for(recorder, inside))
    settle(recorder, box)
    assert recorder.items[:-1] == [expected_job(inside, "st/2022-07-19/audio/rpi4-11@2022-07-19@01-00-00.wav")]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_a_new_sensor_and_date_folder_after_start_is_watched(box, record, observer):
    recorder = record(stream(box, observer))
    first = write_file(box / "scale" / "2022-07-20" / "reading-1.bin", b"1" * 11)
    second = write_file(box / "scale" / "2022-07-20" / "reading-2.bin", b"2" * 22)
    wait_until(lambda: jobs_for(recorder, first) and jobs_for(recorder, second))
    settle(recorder, box)
    assert sorted(recorder.items[:-1], key=lambda job: job.local_path) == [
        expected_job(first, "st/2022-07-20/scale/reading-1.bin"),
        expected_job(second, "st/2022-07-20/scale/reading-2.bin"),
    ]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_a_burst_of_200_files_gives_exactly_200_jobs(box, record, observer):
    recorder = record(stream(box, observer))
    folder = box / "audio" / "2022-07-19"
    paths = [write_file(folder / f"rpi4-11@2022-07-19@00-00-{i:03d}.wav", bytes(i)) for i in range(200)]
    recorder.wait_for(200, timeout=10)
    settle(recorder, box)
    jobs = recorder.items[:-1]
    assert len(jobs) == 200
    assert {job.local_path: job.size for job in jobs} == {str(p): i for i, p in enumerate(paths)}
    assert all(job.priority is Priority.LIVE for job in jobs)


def test_a_file_written_in_parts_gives_one_job_after_close_with_its_final_size(box, record):
    """inotify: pauses longer than the quiet period while open do not make a job; the close does."""
    recorder = record(stream(box, "inotify"))
    path = box / "video" / "2022-07-19" / "rpi4-11@2022-07-19@10-00-00.h264"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as handle:
        for _ in range(5):
            handle.write(b"p" * 1000)
            handle.flush()
            time.sleep(2.5 * QUIET)  # quiet for longer than the debounce, still open
        assert jobs_for(recorder, path) == []
    wait_until(lambda: jobs_for(recorder, path))
    settle(recorder, box)
    assert jobs_for(recorder, path) == [expected_job(path, "st/2022-07-19/video/rpi4-11@2022-07-19@10-00-00.h264")]
    assert recorder.items[0].size == 5000


def test_with_polling_a_file_growing_in_parts_gives_one_job_once_its_size_stopped_changing(box, record):
    """polling sees no Closed: writes closer together than the quiet period keep it from being ready."""
    recorder = record(stream(box, "polling", debounce_seconds=0.4))
    path = box / "video" / "clip.h264"
    path.parent.mkdir()
    with open(path, "wb") as handle:
        for _ in range(8):
            handle.write(b"p" * 1000)
            handle.flush()
            time.sleep(0.12)
        assert jobs_for(recorder, path) == []
    wait_until(lambda: jobs_for(recorder, path))
    assert [job.size for job in recorder.items] == [8000]


@pytest.mark.parametrize("observer", OBSERVERS)
def test_a_file_deleted_within_its_quiet_period_gives_no_job(box, record, observer):
    recorder = record(stream(box, observer, debounce_seconds=0.3))
    doomed = write_file(box / "audio" / "doomed.wav", b"d" * 10)
    doomed.unlink()
    settle(recorder, box)
    assert [job.local_path for job in recorder.items] == [str(box / "sentinel.bin")]


def test_ignored_names_and_the_growing_csv_never_become_jobs_the_final_does(box, record):
    recorder = record(stream(box))
    temp = box / "temp" / "2022-07-19"
    for name in (".hidden.wav", "x.part", "x.tmp", "x.wav~", ".x.wav.swp", "rpi4-11@2022-07-19.csv"):
        write_file(temp / name, b"i")
    write_file(box / ".Trash-1000" / "files" / "old.wav", b"t")
    os.replace(temp / "rpi4-11@2022-07-19.csv", temp / "rpi4-11@2022-07-19.csv.final")
    final = temp / "rpi4-11@2022-07-19.csv.final"
    wait_until(lambda: jobs_for(recorder, final))
    settle(recorder, box)
    assert recorder.items[:-1] == [expected_job(final, "st/2022-07-19/temp/rpi4-11@2022-07-19.csv")]


def test_a_live_close_after_the_backfill_promotes_the_file_once_and_a_change_gives_a_new_job(box, record):
    old = write_file(box / "audio" / "2022-07-18" / "rpi4-11@2022-07-18@23-59-00.wav", b"o" * 100)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    remote = "st/2022-07-18/audio/rpi4-11@2022-07-18@23-59-00.wav"
    recorder = record(stream(box))
    first = recorder.wait_for(1)
    assert first == [expected_job(old, remote, Priority.BACKFILL)]
    for _ in range(2):  # opened for writing, nothing written, closed: live Closed events for the same version
        with open(old, "ab"):
            pass
    settle(recorder, box)
    assert recorder.items[:-1] == [*first, expected_job(old, remote, Priority.LIVE)]
    with open(old, "ab") as handle:
        handle.write(b"more")
    wait_until(lambda: len(jobs_for(recorder, old)) == 3)
    assert jobs_for(recorder, old)[2] == expected_job(old, remote, Priority.LIVE)


def test_rescans_yield_nothing_new_until_the_sink_releases_the_path(box, record):
    kept = write_file(box / "scale" / "2022-07-18" / "kept.bin", b"k" * 7)
    os.utime(kept, (time.time() - 3600, time.time() - 3600))
    released: Subject[str] = Subject()
    recorder = record(stream(box, rescan_interval=0.1, released=released))
    assert recorder.wait_for(1) == [expected_job(kept, "st/2022-07-18/scale/kept.bin", Priority.BACKFILL)]
    time.sleep(0.35)  # three rescans while the job is "queued"
    assert len(recorder.items) == 1
    released.on_next(str(kept))  # delivered, but the local copy was kept: the next rescan finds it again
    recorder.wait_for(2)
    assert recorder.items[1] == recorder.items[0]


@pytest.mark.parametrize(
    ("modified", "priority"),
    [(-0.2, Priority.BACKFILL), (1.0, Priority.LIVE)],
    ids=["finished before the watch started: backlog", "modified as the watch starts: live"],
)
def test_a_file_finished_just_before_start_is_taken_once_it_is_quiet(box, record, modified, priority):
    """Its Closed came before the observer: the scan finds it too young, then looks again. Its priority
    follows its mtime against the subscription's start (`_Backfill.recheck`); the mtimes are set, not
    left to how soon the subscription follows the write (a loaded machine took longer than the slack)."""
    fresh = write_file(box / "audio" / "2022-07-19" / "fresh.wav", b"f" * 42)
    when = time.time() + modified
    os.utime(fresh, (when, when))
    recorder = record(stream(box, debounce_seconds=0.3))
    jobs = recorder.wait_for(1)
    assert jobs == [expected_job(fresh, "st/2022-07-19/audio/fresh.wav", priority)]
    assert time.time() - fresh.stat().st_mtime >= 0.3


def test_disposal_stops_everything(box, record):
    recorder = record(stream(box))
    write_file(box / "a.wav", b"a")
    recorder.wait_for(1)
    recorder.dispose()
    write_file(box / "b.wav", b"b")
    time.sleep(3 * QUIET)
    assert [job.local_path for job in recorder.items] == [str(box / "a.wav")]


def test_bad_values_are_refused_before_subscription(box):
    with pytest.raises(ValueError, match="observer"):
        stream(box, "kqueue")
    with pytest.raises(ValueError, match="backfill_order"):
        stream(box, backfill_order="random")


def test_scan_jobs_lists_the_outbox_as_backfill_jobs_newest_first(box):
    older = write_file(box / "audio" / "2022-07-18" / "rpi4-11@2022-07-18@12-00-00.wav", b"1")
    newer = write_file(box / "audio" / "2022-07-19" / "rpi4-11@2022-07-19@12-00-00.wav", b"22")
    write_file(box / "temp" / "2022-07-19" / "rpi4-11@2022-07-19.csv", b"growing")
    write_file(box / "audio" / "2022-07-19" / ".hidden.wav", b"h")
    jobs = list(scan_jobs(str(box), remote_root=ROOT, station="st"))
    assert jobs == [
        expected_job(newer, "st/2022-07-19/audio/rpi4-11@2022-07-19@12-00-00.wav", Priority.BACKFILL),
        expected_job(older, "st/2022-07-18/audio/rpi4-11@2022-07-18@12-00-00.wav", Priority.BACKFILL),
    ]
    assert [j.local_path for j in scan_jobs(str(box), remote_root=ROOT, station="st", backfill_order="oldest")] == [
        str(older),
        str(newer),
    ]
    assert list(scan_jobs(str(box), remote_root=ROOT, station="st", min_age_seconds=3600)) == []
