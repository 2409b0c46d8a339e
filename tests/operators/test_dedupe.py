"""dedupe_jobs: live + backfill of the same file give one job; a change gives a new one; release forgets."""

from __future__ import annotations

import reactivex
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing

from operators.dedupe import dedupe_jobs
from operators.model import Priority
from tests.helpers import OUTBOX, job

A = job("audio/a.wav", size=10, mtime_ns=1)
A_BACKFILL = job("audio/a.wav", size=10, mtime_ns=1, priority=Priority.BACKFILL)
A_GROWN = job("audio/a.wav", size=20, mtime_ns=2)
A_GROWN_BACKFILL = job("audio/a.wav", size=20, mtime_ns=2, priority=Priority.BACKFILL)
B = job("video/b.h264")
JOBS = {"a": A, "A": A_BACKFILL, "g": A_GROWN, "G": A_GROWN_BACKFILL, "b": B}
on_next, on_completed, on_error = ReactiveTest.on_next, ReactiveTest.on_completed, ReactiveTest.on_error
subscribe = ReactiveTest.subscribe
PATHS = {"x": f"{OUTBOX}/audio/a.wav", "y": f"{OUTBOX}/video/b.h264"}


def test_live_plus_backfill_of_the_same_file_is_one_job():
    with marbles_testing() as (start, cold, _hot, exp):
        live = cold("-a-b----|", lookup=JOBS)
        backfill = cold("---A--b--|", lookup=JOBS)
        expected = exp("-a-b-----|", lookup=JOBS)
        assert start(reactivex.merge(live, backfill).pipe(dedupe_jobs())) == expected


def test_a_changed_file_gives_a_new_job_and_a_rescan_of_it_does_not():
    with marbles_testing() as (start, cold, _hot, exp):
        jobs = cold("-a-A-g-G-g-|", lookup=JOBS)
        expected = exp("-a---g-----|", lookup=JOBS)
        assert start(jobs.pipe(dedupe_jobs())) == expected


def test_released_paths_are_forgotten_so_a_later_event_makes_a_job_again():
    with marbles_testing() as (start, cold, hot, exp):
        jobs = cold("-a-b-a-----a-b-|", lookup=JOBS)
        released = hot("--------x-------", lookup=PATHS)
        expected = exp("-a-b-------a---|", lookup=JOBS)
        assert start(jobs.pipe(dedupe_jobs(released))) == expected


def test_the_completion_of_released_does_not_end_the_jobs():
    with marbles_testing() as (start, cold, hot, exp):
        jobs = cold("-a-----a-|", lookup=JOBS)
        released = hot("---x-|", lookup=PATHS)
        expected = exp("-a-----a-|", lookup=JOBS)
        assert start(jobs.pipe(dedupe_jobs(released))) == expected


def test_errors_propagate_from_jobs_and_from_released():
    error = RuntimeError("sink gone")
    with marbles_testing() as (start, cold, _hot, exp):
        jobs = cold("-a-#", lookup=JOBS, error=error)
        expected = exp("-a-#", lookup=JOBS, error=error)
        assert start(jobs.pipe(dedupe_jobs())) == expected
    with marbles_testing() as (start, cold, hot, exp):
        jobs = cold("-a------b-|", lookup=JOBS)
        released = hot("----#", error=error)
        expected = exp("-a--#", lookup=JOBS, error=error)
        assert start(jobs.pipe(dedupe_jobs(released))) == expected


def test_memory_holds_only_unreleased_paths():
    """After every path is released, the next round emits them all again (nothing kept)."""
    with marbles_testing() as (start, cold, hot, exp):
        jobs = cold("-a-b-----a-b-|", lookup=JOBS)
        released = hot("------x-y-----", lookup=PATHS)
        expected = exp("-a-b-----a-b-|", lookup=JOBS)
        assert start(jobs.pipe(dedupe_jobs(released))) == expected


def test_a_live_job_after_the_backfill_of_the_same_version_passes_once_to_promote_it():
    """The scan saw the file first: the watcher's job must still reach the sink, or the file stays backfill."""
    with marbles_testing() as (start, cold, _hot, exp):
        backfill = cold("-A-----A--|", lookup=JOBS)
        live = cold("---a-a-----|", lookup=JOBS)
        expected = exp("-A-a-------|", lookup=JOBS)
        assert start(reactivex.merge(backfill, live).pipe(dedupe_jobs())) == expected


def test_a_promoted_file_changed_again_goes_on_at_the_priority_of_its_new_job():
    with marbles_testing() as (start, cold, _hot, exp):
        jobs = cold("-A-a-G-g-G-|", lookup=JOBS)
        expected = exp("-A-a-G-g---|", lookup=JOBS)
        assert start(jobs.pipe(dedupe_jobs())) == expected


def test_jobs_and_released_are_subscribed_until_the_jobs_complete_or_disposal():
    for disposed, end, messages in (
        (1000, 250, [on_next(210, A_BACKFILL), on_next(220, A), on_completed(250)]),
        (215, 215, [on_next(210, A_BACKFILL)]),
    ):
        scheduler = TestScheduler()
        jobs = scheduler.create_cold_observable(on_next(10, A_BACKFILL), on_next(20, A), on_completed(50))
        released = scheduler.create_hot_observable(on_next(230, PATHS["x"]))
        piped = jobs.pipe(dedupe_jobs(released))
        results = scheduler.start(lambda piped=piped: piped, disposed=disposed)
        assert results.messages == messages
        assert jobs.subscriptions == [subscribe(200, end)]
        assert released.subscriptions == [subscribe(200, end)]


def test_an_error_of_the_jobs_unsubscribes_both_sources_at_once():
    error = RuntimeError("scan failed")
    scheduler = TestScheduler()
    jobs = scheduler.create_cold_observable(on_next(10, A), on_error(100, error))
    released = scheduler.create_hot_observable(on_next(230, PATHS["x"]), on_completed(900))
    results = scheduler.start(lambda: jobs.pipe(dedupe_jobs(released)))
    assert results.messages == [on_next(210, A), on_error(300, error)]
    assert jobs.subscriptions == [subscribe(200, 300)]
    assert released.subscriptions == [subscribe(200, 300)]


def test_released_completing_early_leaves_the_jobs_subscribed():
    scheduler = TestScheduler()
    jobs = scheduler.create_cold_observable(on_next(10, A), on_next(100, B), on_completed(350))
    released = scheduler.create_hot_observable(on_next(230, PATHS["x"]), on_completed(240))
    results = scheduler.start(lambda: jobs.pipe(dedupe_jobs(released)))
    assert results.messages == [on_next(210, A), on_next(300, B), on_completed(550)]
    assert jobs.subscriptions == [subscribe(200, 550)]
    assert released.subscriptions == [subscribe(200, 240)]
