"""JobBoard: priorities, one entry per path, follow-ups, backoff and parking, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from operators.model import Priority, UploadJob
from pipeline.ftp.session import UploadProgress
from pipeline.sink.board import JobBoard
from pipeline.sink.live_reserve import LiveReserve
from pipeline.sink.model import Outcome
from tests.helpers import Clock, job, wait_until


@pytest.fixture
def clock() -> Clock:
    return Clock(100.0)


@pytest.fixture
def board(clock: Clock) -> JobBoard:
    return JobBoard(retry_base=1.0, retry_max=8.0, clock=clock, rand=lambda: 1.0)


def take_all(board: JobBoard) -> list[str]:
    names = []
    while (entry := board.take(timeout=0)) is not None:
        names.append(entry.job.local_path.rsplit("/", 1)[1])
    return names


def test_primary_is_served_before_secondary_in_arrival_order(board):
    board.put(job("b1", Priority.BACKFILL))
    board.put(job("l1"))
    board.put(job("b2", Priority.BACKFILL))
    board.put(job("l2"))
    assert take_all(board) == ["l1", "l2", "b1", "b2"]


def test_a_newer_job_for_a_queued_path_replaces_it_in_place(board):
    board.put(job("a"))
    board.put(job("b"))
    board.put(job("a", size=20))
    entries = [board.take(timeout=0), board.take(timeout=0)]
    assert [(e.job.local_path, e.job.size) for e in entries] == [("/outbox/a", 20), ("/outbox/b", 10)]
    assert board.take(timeout=0) is None


def test_a_backfill_file_found_live_moves_to_the_primary_and_never_back(board):
    board.put(job("x", Priority.BACKFILL))
    board.put(job("y", Priority.BACKFILL))
    board.put(job("y", Priority.LIVE))
    board.put(job("y", Priority.BACKFILL))
    assert board.counts()["queued_primary"] == 1
    assert take_all(board) == ["y", "x"]


def test_a_failed_job_waits_its_own_backoff_without_blocking_others(board, clock):
    board.put(job("a"))
    board.put(job("b"))
    a = board.take(timeout=0)
    assert board.finish(a, Outcome.RETRY) == 1.0  # rand=1: the cap of the first failure
    assert take_all(board) == ["b"]
    clock.now += 1.0
    a = board.take(timeout=0)
    assert (a.job.local_path, a.attempts, a.failures) == ("/outbox/a", 2, 1)
    assert board.finish(a, Outcome.RETRY) == 2.0
    for _ in range(5):
        clock.now += 10
        a = board.take(timeout=0)
        delay = board.finish(a, Outcome.RETRY)
    assert delay == 8.0  # capped at retry_max


def test_a_parked_job_comes_back_after_retry_max(board, clock):
    board.put(job("a"))
    a = board.take(timeout=0)
    assert board.finish(a, Outcome.PARKED) == 8.0
    assert board.counts() == {"queued_primary": 0, "queued_secondary": 0, "waiting": 1, "parked": 1, "in_flight": 0}
    clock.now += 7.9
    assert board.take(timeout=0) is None
    clock.now += 0.1
    assert board.take(timeout=0) is a
    assert board.counts()["parked"] == 0


def test_rescanning_a_waiting_file_keeps_its_backoff_but_a_changed_file_goes_now(board, clock):
    board.put(job("a"))
    board.finish(board.take(timeout=0), Outcome.PARKED)
    board.put(job("a"))  # the periodic rescan finds the same version
    assert board.take(timeout=0) is None
    board.put(job("a", size=11))  # the file changed
    entry = board.take(timeout=0)
    assert (entry.job.size, entry.failures, entry.parked) == (11, 0, False)


def test_a_job_for_a_path_in_flight_is_decided_when_the_attempt_ends(board):
    board.put(job("a"))
    entry = board.take(timeout=0)
    board.put(job("a"))  # same version: already being delivered
    board.finish(entry, Outcome.DELIVERED)
    assert board.take(timeout=0) is None

    board.put(job("b"))
    entry = board.take(timeout=0)
    board.put(job("b", size=99))  # a newer version arrived meanwhile
    board.finish(entry, Outcome.DELIVERED)
    assert board.take(timeout=0).job.size == 99

    board.put(job("c"))
    entry = board.take(timeout=0)
    board.put(job("c", size=5))
    assert board.finish(entry, Outcome.RETRY) == 0.0  # the new version goes at once
    assert board.take(timeout=0).job.size == 5


def test_changed_goes_back_at_once_with_the_new_version_and_no_resume(board):
    board.put(job("a"))
    entry = board.take(timeout=0)
    entry.progress = UploadProgress(stored=True)
    board.finish(entry, Outcome.CHANGED, job("a", size=30, mtime_ns=2))
    again = board.take(timeout=0)
    assert (again.job.size, again.job.mtime_ns, again.attempts) == (30, 2, 2)
    assert board.parts.is_ours(job("a", size=10, mtime_ns=1))  # the old version's bytes...
    assert not board.parts.is_ours(again.job)  # ...are no beginning of the new one


def test_a_part_is_resumed_only_by_the_version_whose_stor_wrote_it_last(board, clock):
    one = UploadJob("/out/hive1/x.wav", "/up/x.wav", 10, 1)
    two = UploadJob("/out/hive2/x.wav", "/up/x.wav", 10, 1)

    def attempt(stored: bool) -> UploadJob:
        clock.now += 100  # past any backoff
        entry = board.take(timeout=0)
        entry.progress = UploadProgress(stored=stored)
        board.finish(entry, Outcome.RETRY)
        return entry.job

    board.put(one)
    assert attempt(stored=False) == one  # failed before its STOR was accepted
    assert not board.parts.is_ours(one)
    assert attempt(stored=True) == one  # cut in the middle
    assert board.parts.is_ours(one)
    board.put(two)
    assert attempt(stored=True) == two  # another file with the same remote path wrote the .part since
    assert (board.parts.is_ours(one), board.parts.is_ours(two)) == (False, True)


def test_gone_is_final(board):
    board.put(job("a"))
    board.finish(board.take(timeout=0), Outcome.GONE)
    assert board.counts() == {"queued_primary": 0, "queued_secondary": 0, "waiting": 0, "parked": 0, "in_flight": 0}


def test_take_blocks_until_a_job_arrives_and_close_wakes_everyone():
    board = JobBoard(1.0, 8.0)
    got = []
    worker = threading.Thread(target=lambda: got.append(board.take(timeout=5)))
    worker.start()
    board.put(job("a"))
    worker.join(2)
    assert got[0].job.local_path == "/outbox/a"

    waiters = [threading.Thread(target=lambda: got.append(board.take())) for _ in range(3)]
    for waiter in waiters:
        waiter.start()
    board.close()
    for waiter in waiters:
        waiter.join(2)
        assert not waiter.is_alive()
    assert got[1:] == [None, None, None]
    board.put(job("b"))
    assert board.take(timeout=0) is None


def test_take_returns_none_when_idle_for_the_timeout():
    board = JobBoard(1.0, 8.0)
    assert board.take(timeout=0.05) is None


def test_jobs_due_together_wake_every_idle_worker_not_just_the_one_that_released_them(clock):
    board = JobBoard(retry_base=8.0, retry_max=8.0, clock=clock, rand=lambda: 1.0)
    for name in ("a", "b", "c"):
        board.put(job(name))
    for entry in [board.take(timeout=0) for _ in range(3)]:
        board.finish(entry, Outcome.RETRY)  # all three due at 108
    got = []
    idle = threading.Thread(target=lambda: got.append(board.take(timeout=30)), daemon=True)
    idle.start()
    wait_until(lambda: len(board._cond._waiters) == 1)  # asleep until the first timer: 8 s
    clock.now = 108.0  # time passes; another worker releases all three at once and takes one
    first = board.take(timeout=0)
    idle.join(0.4)  # the idle worker is woken for the next one now, not at the end of its sleep
    assert not idle.is_alive()
    assert [first.job.local_path, got[0].job.local_path] == ["/outbox/a", "/outbox/b"]
    assert board.counts()["queued_primary"] == 1


def test_a_remote_path_in_flight_holds_back_another_job_for_it_until_the_attempt_ends(board):
    hive1 = UploadJob("/out/hive1/x.wav", "/up/x.wav", 10, 1)
    hive2 = UploadJob("/out/hive2/x.wav", "/up/x.wav", 10, 1)
    for one in (hive1, hive2, job("other")):
        board.put(one)
    first = board.take(timeout=0)
    assert first.job == hive1
    assert board.take(timeout=0).job.local_path == "/outbox/other"  # hive2 waits: same remote path
    assert board.take(timeout=0) is None
    assert board.counts()["queued_primary"] == 1
    board.untake(first)  # given back: the path is free again, but hive1 is first in line
    assert board.take(timeout=0).job == hive1
    assert board.take(timeout=0) is None
    board.finish(first, Outcome.DELIVERED)
    assert board.take(timeout=0).job == hive2


def test_finishing_wakes_the_worker_that_waits_for_the_remote_path():
    board = JobBoard(retry_base=1.0, retry_max=8.0)
    board.put(UploadJob("/out/hive1/x.wav", "/up/x.wav", 10, 1))
    board.put(UploadJob("/out/hive2/x.wav", "/up/x.wav", 10, 1))
    first = board.take(timeout=0)
    got = []
    idle = threading.Thread(target=lambda: got.append(board.take(timeout=30)), daemon=True)
    idle.start()
    wait_until(lambda: len(board._cond._waiters) == 1)
    board.finish(first, Outcome.DELIVERED)
    idle.join(2)
    assert got[0].job.local_path == "/out/hive2/x.wav"


def test_what_this_process_placed_decides_what_it_may_replace(board):
    def place(one: UploadJob) -> None:
        board.put(one)
        entry = board.take(timeout=0)
        entry.progress = UploadProgress(stored=True, complete=True, renamed=True)
        board.finish(entry, Outcome.DELIVERED)

    hive1 = UploadJob("/out/hive1/x.wav", "/up/x.wav", 10, 1)
    hive2 = UploadJob("/out/hive2/x.wav", "/up/x.wav", 10, 1)
    assert board.parts.may_replace(hive2, 10) and not board.parts.may_replace(hive2, 11)  # unknown: only its own size
    place(hive1)
    assert not board.parts.may_replace(hive2, 10)  # this process put another file there
    assert board.parts.may_replace(UploadJob("/out/hive1/x.wav", "/up/x.wav", 99, 2), 10)  # a newer version of it
    place(UploadJob("/out/t/s.csv", "/up/s.csv", 5, 1))
    assert board.parts.may_replace(UploadJob("/out/t/s.csv.final", "/up/s.csv", 9, 2), 5)  # the day's final state


def test_a_cold_taker_gets_a_job_only_while_no_warm_taker_waits(board):
    """A worker without a session takes work only when no open session is idle: sessions open on demand."""
    warm_got: list[str] = []
    warm = threading.Thread(target=lambda: warm_got.append(board.take(timeout=5).path), daemon=True)
    warm.start()
    wait_until(lambda: board._warm_waiting == 1)
    board.put(job("a.wav"))
    assert board.take(timeout=0, cold=True) is None  # the waiting session's job (taken, or about to be)
    warm.join(5)
    assert warm_got == ["/outbox/a.wav"]
    board.put(job("b.wav"))  # nobody warm waits now: a new session may open for it
    entry = board.take(timeout=0, cold=True)
    assert entry is not None and entry.path == "/outbox/b.wav"


def test_cold_takers_are_woken_when_work_is_left_over(board):
    cold_got: list[str] = []
    cold = threading.Thread(target=lambda: cold_got.append(board.take(timeout=5, cold=True).path), daemon=True)
    cold.start()
    wait_until(lambda: board._cold_waiting == 1)
    board.put(job("a.wav"))
    cold.join(5)
    assert cold_got == ["/outbox/a.wav"]


def test_one_session_is_kept_for_live_work_while_the_backlog_holds_the_others():
    board = JobBoard(1.0, 10.0, reserve=LiveReserve(backlog_sessions=2, short_bytes=100))
    backfill = Priority.BACKFILL
    for name in ("b1", "b2", "b3"):
        board.put(job(name, backfill, size=1_000))
    board.put(job("small", backfill, size=100))
    first, second = board.take(timeout=0), board.take(timeout=0)
    assert [first.path[-2:], second.path[-2:]] == ["b1", "b2"]
    small = board.take(timeout=0)  # the spare session takes only a short backlog file
    assert small.path.endswith("small")
    assert board.take(timeout=0) is None  # b3 waits: the session is kept for live work
    board.put(job("live", size=1_000_000))
    assert board.take(timeout=0).path.endswith("live")  # a live file, however long, takes it
    board.finish(first, Outcome.DELIVERED)
    assert board.take(timeout=0).path.endswith("b3")  # a backlog session is free again


def test_a_backlog_transfer_whose_bytes_are_all_sent_frees_its_place_for_the_next():
    board = JobBoard(1.0, 10.0, reserve=LiveReserve(backlog_sessions=1))
    board.put(job("b1", Priority.BACKFILL, size=1_000))
    board.put(job("b2", Priority.BACKFILL, size=1_000))
    renaming = board.take(timeout=0)
    assert board.take(timeout=0) is None
    renaming.progress = UploadProgress(stored=True, complete=True)  # in its rename: take the next ahead
    assert board.take(timeout=0).path.endswith("b2")


def test_a_nudge_ends_the_waits_for_a_job_even_one_whose_wait_was_chosen_before_it():
    """`run --once`'s last round of manifests: an idle worker waiting for a job (30 s until its NOOP) goes to it now."""
    real = JobBoard(retry_base=1.0, retry_max=60.0)
    taken: list[object] = []
    waiter = threading.Thread(target=lambda: taken.append(real.take(timeout=30)))
    waiter.start()
    wait_until(lambda: real._warm_waiting == 1, timeout=5)
    real.nudge()
    waiter.join(5)
    assert not waiter.is_alive() and taken == [None]
    before = real.nudges - 1  # a worker that chose its wait before that nudge
    assert real.take(timeout=30, nudges=before) is None  # at once, not after 30 s


def test_jobs_put_together_are_queued_as_if_put_one_by_one_with_one_change_of_the_counts(clock):
    """`put_many` (the jobs of one write of the parent's pipe): the same queues, merges and follow-ups as `put`
    one by one, the counts handed over once, and as many idle takers woken as jobs became ready."""
    changes: list[tuple[int, ...]] = []

    class Counters:
        def set_board(self, counts, *added):
            changes.append(counts)

    one_by_one = JobBoard(1.0, 8.0, clock=clock, rand=lambda: 1.0)
    together = JobBoard(1.0, 8.0, counters=Counters(), clock=clock, rand=lambda: 1.0)  # type: ignore[arg-type]
    for board in (one_by_one, together):
        board.put(job("busy"))
        board.take(timeout=0)  # in flight: a newer job for it waits as its follow-up
    jobs = [
        job("b1", Priority.BACKFILL),
        job("l1"),
        job("b1", Priority.LIVE, size=30),  # found live: moves to the primary, merged
        job("busy", size=40),
        job("b2", Priority.BACKFILL),
    ]
    for each in jobs:
        one_by_one.put(each)
    changes.clear()
    taken: list[str] = []

    def taker() -> None:
        entry = together.take(timeout=30)
        taken.append(entry.job.local_path if entry is not None else "")

    takers = [threading.Thread(target=taker) for _ in range(3)]
    for thread in takers:
        thread.start()
    wait_until(lambda: together._warm_waiting == 3, timeout=10)
    together.put_many(jobs)
    for thread in takers:
        thread.join(10)
    # one change of the counts for the five jobs, with all of them in (the takes' changes come after it)
    assert changes[0] == (2, 1, 0, 0, 1) and len(changes) == 4, changes
    assert sorted(taken) == ["/outbox/b1", "/outbox/b2", "/outbox/l1"]  # three woken for three ready jobs
    assert take_all(one_by_one) == ["l1", "b1", "b2"]
    assert one_by_one.counts() == together.counts()
    for board in (one_by_one, together):
        board.finish(board._in_flight["/outbox/busy"], Outcome.DELIVERED)
    assert [(e.job.local_path, e.job.size) for e in [one_by_one.take(timeout=0), together.take(timeout=0)]] == [
        ("/outbox/busy", 40)
    ] * 2
