"""observe_on_in_runs on virtual time: what observe_on does (order, errors, completion, disposal), with one
scheduled action per run of items."""

from __future__ import annotations

from typing import Any

import pytest
from reactivex import abc
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing

from operators.hand_over import observe_on_in_runs

on_next, on_error, on_completed, subscribe = (
    ReactiveTest.on_next,
    ReactiveTest.on_error,
    ReactiveTest.on_completed,
    ReactiveTest.subscribe,
)


class CountingScheduler(TestScheduler):
    """A virtual clock that counts the actions scheduled for now (what a hand-over costs the event loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.scheduled_now = 0

    def schedule(self, action: Any, state: Any = None) -> abc.DisposableBase:
        self.scheduled_now += 1
        return super().schedule(action, state)


def test_items_errors_and_completion_come_out_in_order_and_at_their_time():
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        assert start(cold("-a-b--c-|").pipe(observe_on_in_runs())) == exp("-a-b--c-|")
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        assert start(cold("-a-(b,c)-#").pipe(observe_on_in_runs())) == exp("-a-(b,c)-#")


def test_a_burst_is_one_scheduled_action_and_a_long_one_is_cut_into_runs():
    scheduler = CountingScheduler()
    xs = scheduler.create_hot_observable(
        on_next(210, 1), on_next(210, 2), on_next(210, 3), on_next(220, 4), *[on_next(230, n) for n in range(5, 10)]
    )
    results = scheduler.start(lambda: xs.pipe(observe_on_in_runs(scheduler, max_run=2)))
    assert results.messages == [on_next(210, 1), on_next(210, 2), on_next(210, 3), on_next(220, 4)] + [
        on_next(230, n) for n in range(5, 10)
    ]
    # 210: a run of 2, then 1; 220: 1; 230: runs of 2, 2 and 1. observe_on schedules one per item (and one more).
    assert scheduler.scheduled_now == 2 + 1 + 3


def test_after_disposal_nothing_more_is_passed_on():
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, 1), on_next(300, 2), on_completed(400))
    results = scheduler.start(lambda: xs.pipe(observe_on_in_runs(scheduler)), disposed=250)
    assert results.messages == [on_next(210, 1)]
    assert xs.subscriptions == [subscribe(200, 250)]


def test_an_observer_that_fails_ends_the_hand_over():
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(210, 1), on_next(220, 2))
    seen: list[int] = []

    def fail_on_one(value: int) -> None:
        seen.append(value)
        if value == 1:
            raise RuntimeError("observer bug")

    xs.pipe(observe_on_in_runs(scheduler)).subscribe(fail_on_one)
    with pytest.raises(RuntimeError, match="observer bug"):  # as observe_on: it reaches the scheduler
        scheduler.start()
    scheduler.advance_to(300)
    assert seen == [1]
