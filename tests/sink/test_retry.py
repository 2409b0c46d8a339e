"""The retry delays: full jitter under an exponential cap, and the reconnect Backoff."""

from __future__ import annotations

from pipeline.sink.retry import Backoff, full_jitter


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
