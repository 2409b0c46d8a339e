"""The token bucket that caps the bandwidth all sessions share."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.transport.bandwidth import LiveFirst, TokenBucket
from tests.helpers import Clock, wait_until


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


def test_a_backlog_sender_pauses_between_blocks_while_a_live_transfer_runs_and_goes_on_after():

    gate = LiveFirst()
    backlog, live = gate.for_session(), gate.for_session()
    backlog.backlog, live.backlog = True, False
    sent: list[str] = []
    gate.live_started()

    def send_backlog_block() -> None:
        backlog.acquire(backlog.chunk_size)
        sent.append("backlog")

    sender = threading.Thread(target=send_backlog_block)
    sender.start()
    live.acquire(live.chunk_size)  # the live session never waits for the backlog
    sent.append("live")
    time.sleep(0.1)
    assert sent == ["live"]  # the backlog block waits while the live transfer is in flight
    gate.live_ended()
    sender.join(5)
    assert sent == ["live", "backlog"]


def test_a_paused_backlog_sender_stops_waiting_at_an_abort():

    gate = LiveFirst()
    backlog = gate.for_session()
    backlog.backlog = True
    gate.live_started()
    aborted = threading.Event()
    aborted.set()
    backlog.acquire(1, wait=aborted.wait)  # returns at once: the session then sees the abort


def test_a_live_sender_does_not_queue_behind_the_backlog_s_debt():
    """Backlog senders waiting their turn in the shared bucket give their tokens back when a live
    transfer starts: the live sender's first block goes after one pause step, not after the debt.
    (The debt is well over a second, so that a busy machine's late wake-ups cannot pass for it.)"""
    gate = LiveFirst(TokenBucket(100_000, capacity=50_000))
    live = gate.for_session()
    backlogs = [gate.for_session() for _ in range(3)]
    for throttle in backlogs:
        throttle.backlog = True
    gate.bucket.reserve(50_000)  # the bucket is empty
    senders = [threading.Thread(target=throttle.acquire, args=(50_000,)) for throttle in backlogs]
    for sender in senders:
        sender.start()  # 1.5 s of debt queued
    # all three have reserved (a busy machine starts threads late): what is left of their debt is over 1.2 s
    wait_until(lambda: gate.bucket.reserve(0) > 1.2, timeout=5, interval=0.005)
    gate.live_started()
    started = time.monotonic()
    live.acquire(25_000)
    waited = time.monotonic() - started
    gate.live_ended()
    for sender in senders:
        sender.join(5)
    assert waited < 1.0, waited  # its own quarter second (and a busy machine's wake-ups), not the backlog's 1.2 more
