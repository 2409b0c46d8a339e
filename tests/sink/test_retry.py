"""retry.py: every "when next?" of the uploader, on fixed draws (rand=1.0: the top of each jitter range)."""

from __future__ import annotations

import itertools

from pipeline.sink.model import Outcome
from pipeline.sink.retry import Backoff, ConnectAttempts, RetryPolicy, connect_attempts_for, full_jitter, once_gives_up

RETRY = RetryPolicy(base=1.0, cap=8.0, rand=lambda: 1.0)


def test_a_failed_job_backs_off_exponentially_and_a_parked_one_waits_the_cap():
    assert [RETRY.job_delay(n, Outcome.RETRY) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert [RETRY.job_delay(n, Outcome.CHANGED) for n in (1, 2)] == [1.0, 2.0]
    assert RETRY.job_delay(1, Outcome.PARKED) == 8.0  # the server refused it: asking sooner changes nothing


def test_the_jitter_spreads_stations_that_failed_at_the_same_moment():
    delays = {RetryPolicy(1.0, 8.0).job_delay(4, Outcome.RETRY) for _ in range(50)}
    assert len(delays) > 40 and all(0.0 <= d <= 8.0 for d in delays)


def test_a_refused_login_waits_the_cap_at_once_and_still_counts_as_a_failed_connect():
    backoff = RETRY.backoff()
    assert RETRY.connect_delay(backoff) == 1.0
    assert RETRY.connect_delay(backoff, login_refused=True) == 8.0
    assert backoff.failures == 2
    backoff.reset()
    assert RETRY.connect_delay(backoff) == 1.0


def test_a_dead_sink_is_rebuilt_after_a_doubling_pause_up_to_the_cap():
    pauses = RetryPolicy(base=1.5, cap=10.0).rebuild_pauses()
    assert list(itertools.islice(pauses, 6)) == [1.5, 3.0, 6.0, 10.0, 10.0, 10.0]


def test_worker_errors_pause_the_base_and_the_pool_regrows_every_cap():
    assert (RETRY.after_worker_error, RETRY.regrow_seconds) == (1.0, 8.0)


def test_connect_attempts_give_up_after_the_limit_in_a_row_and_start_over_after_a_login():
    attempts = ConnectAttempts(3, RETRY)
    assert [attempts.exhausted(attempts.failed()) for _ in range(2)] == [False, False]
    assert [attempts.next_delay(), attempts.next_delay()] == [1.0, 2.0]  # one schedule, shared by the workers
    attempts.connected()
    assert attempts.failures == 0 and attempts.next_delay() == 1.0
    assert [attempts.exhausted(attempts.failed()) for _ in range(3)] == [False, False, True]
    unlimited = ConnectAttempts(0, RETRY)
    assert not any(unlimited.exhausted(unlimited.failed()) for _ in range(100))


def test_run_once_tries_a_file_once_plus_max_retries_and_gives_up_a_parked_one_at_once():
    assert connect_attempts_for(max_retries=5) == 6
    assert [once_gives_up(n, Outcome.RETRY, max_retries=2) for n in (1, 2, 3)] == [False, False, True]
    assert once_gives_up(1, Outcome.PARKED, max_retries=5)
    assert not once_gives_up(1, Outcome.CHANGED, max_retries=1)


def test_full_jitter_stays_under_the_exponential_cap():
    assert [full_jitter(n, 0.5, 3.0, rand=lambda: 1.0) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert full_jitter(3, 0.5, 3.0, rand=lambda: 0.25) == 0.5
    assert full_jitter(10_000, 0.5, 3.0, rand=lambda: 1.0) == 3.0
    assert all(0 <= full_jitter(4, 1, 10) <= 8 for _ in range(100))


def test_backoff_counts_failures_and_resets():
    backoff = Backoff(1.0, 4.0, rand=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
