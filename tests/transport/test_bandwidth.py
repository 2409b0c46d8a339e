"""The token bucket that caps the bandwidth all sessions share."""

from __future__ import annotations

import pytest

from pipeline.transport.bandwidth import TokenBucket
from tests.helpers import Clock


def test_token_bucket_allows_a_burst_then_charges_the_rate():
    clock = Clock()
    bucket = TokenBucket(1000, capacity=500, clock=clock)
    assert bucket.chunk_size == 500
    assert bucket.reserve(500) == 0.0
    assert bucket.reserve(500) == pytest.approx(0.5)  # in debt: wait it off
    assert bucket.reserve(1000) == pytest.approx(1.5)  # senders queue behind each other
    clock.now += 1.5
    assert bucket.reserve(0) == 0.0  # the debt is paid off: the bucket is empty, not in debt
    clock.now += 100
    assert bucket.reserve(600) == pytest.approx(0.1)  # never more than one burst saved up


def test_token_bucket_default_burst_is_a_quarter_second():
    assert TokenBucket(100_000).chunk_size == 25_000
    with pytest.raises(ValueError):
        TokenBucket(0)
