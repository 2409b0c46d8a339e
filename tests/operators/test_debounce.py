"""debounce_per_path on virtual time: bursts per path, independent paths, completion and errors, and when
the source is subscribed and disposed."""

from __future__ import annotations

from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.marbles import marbles_testing

from operators.debounce import debounce_per_path
from tests.operators.events import closed, created, deleted, modified

A_CREATED, A_MODIFIED, A_CLOSED = created("audio/a.wav"), modified("audio/a.wav"), closed("audio/a.wav")
B_CLOSED = closed("video/b.h264")
EVENTS = {"c": A_CREATED, "m": A_MODIFIED, "a": A_CLOSED, "b": B_CLOSED, "d": deleted("audio/a.wav")}


def test_a_burst_for_one_path_is_its_last_event_once_quiet():
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-c-m-m-a-------|", lookup=EVENTS)
        expected = exp("----------a----|", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(3))) == expected


def test_separate_quiet_periods_give_separate_emissions():
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-a-----a-a------|", lookup=EVENTS)
        expected = exp("----a-------a---|", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(3))) == expected


def test_interleaved_paths_never_delay_each_other():
    # b is quiet from t=3 while a keeps changing until t=9: b comes out at 8, a at 14.
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-m-b-m-m-a--------|", lookup=EVENTS)
        expected = exp("--------b-----a---|", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(5))) == expected


def test_a_deletion_is_the_last_event_and_replaces_the_pending_close():
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-a-d--------|", lookup=EVENTS)
        expected = exp("------d-----|", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(3))) == expected


def _is_deletion(event):
    return event is EVENTS["d"]


def test_an_ending_event_drops_the_pending_close_at_once_and_is_never_emitted():
    """With `ends`, a deletion cancels its path's pending close and leaves the other paths alone."""
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-a-b-d------d---a-----|", lookup=EVENTS)
        expected = exp("--------b------------a|", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(5, ends=_is_deletion))) == expected


class _CountingScheduler(TestScheduler):
    timers = 0

    def schedule_relative(self, duetime, action, state=None):
        self.timers += 1
        return super().schedule_relative(duetime, action, state)


def test_an_ending_event_for_a_path_that_is_not_pending_leaves_no_timer():
    scheduler = _CountingScheduler()
    xs = scheduler.create_hot_observable(
        ReactiveTest.on_next(210, EVENTS["d"]), ReactiveTest.on_next(220, EVENTS["d"]), ReactiveTest.on_completed(300)
    )
    results = scheduler.start(lambda: xs.pipe(debounce_per_path(5, scheduler, ends=_is_deletion)))
    assert results.messages == [ReactiveTest.on_completed(300)]
    assert scheduler.timers == 0


def test_paths_due_together_share_one_timer_and_a_busy_path_moves_behind_the_others():
    """A burst of new files (here three at one instant) is one timer, not one per path; a path that changes again
    goes behind the others, and the timer sleeps again for it."""
    scheduler = _CountingScheduler()
    c_closed = closed("audio/c.wav")
    xs = scheduler.create_hot_observable(
        ReactiveTest.on_next(210, A_CLOSED),
        ReactiveTest.on_next(210, B_CLOSED),
        ReactiveTest.on_next(210, c_closed),
        ReactiveTest.on_next(212, A_MODIFIED),
        ReactiveTest.on_completed(300),
    )
    results = scheduler.start(lambda: xs.pipe(debounce_per_path(5, scheduler)))
    assert results.messages == [
        ReactiveTest.on_next(215, B_CLOSED),
        ReactiveTest.on_next(215, c_closed),
        ReactiveTest.on_next(217, A_MODIFIED),
        ReactiveTest.on_completed(300),
    ]
    assert scheduler.timers == 2  # one for the burst, one more for the path that changed again


def test_completion_flushes_every_pending_path_at_once():
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-a-b-|", lookup=EVENTS)
        expected = exp("-----(a,b,|)", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(10))) == expected


def test_an_error_propagates_and_drops_pending_paths():
    error = RuntimeError("boom")
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-a-----b-#", lookup=EVENTS, error=error)
        expected = exp("----a----#", lookup=EVENTS, error=error)
        assert start(events.pipe(debounce_per_path(3))) == expected


def test_state_is_released_when_a_path_goes_quiet():
    """The same path after a quiet period opens a fresh group: emitted again, on its own timing."""
    with marbles_testing(timespan=1.0) as (start, cold, _hot, exp):
        events = cold("-a---------------a--------|", lookup=EVENTS)
        expected = exp("----a---------------a-----|", lookup=EVENTS)
        assert start(events.pipe(debounce_per_path(3))) == expected


# --- subscription and disposal times (virtual ticks; subscribed at 200 as in RxPY's own tests)

on_next, on_completed, on_error = ReactiveTest.on_next, ReactiveTest.on_completed, ReactiveTest.on_error
subscribe = ReactiveTest.subscribe


def test_the_source_is_subscribed_until_it_completes_and_the_pending_path_flushes_then():
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(
        on_next(150, A_MODIFIED),  # before the subscription: never seen
        on_next(250, A_CLOSED),
        on_next(330, B_CLOSED),  # b: one burst, still pending when the source completes
        on_next(360, B_CLOSED),
        on_completed(400),
    )
    results = scheduler.start(lambda: xs.pipe(debounce_per_path(50, scheduler)))
    assert results.messages == [on_next(300, A_CLOSED), on_next(400, B_CLOSED), on_completed(400)]
    assert xs.subscriptions == [subscribe(200, 400)]


def test_disposal_unsubscribes_the_source_and_drops_the_pending_timers():
    scheduler = TestScheduler()
    xs = scheduler.create_hot_observable(on_next(250, A_CLOSED), on_next(500, B_CLOSED), on_completed(800))
    results = scheduler.start(lambda: xs.pipe(debounce_per_path(100, scheduler)), disposed=550)
    assert results.messages == [on_next(350, A_CLOSED)]  # b was pending at 550: never emitted
    assert xs.subscriptions == [subscribe(200, 550)]
    scheduler.advance_to(1000)
    assert results.messages == [on_next(350, A_CLOSED)]


def test_an_error_unsubscribes_the_source_at_once():
    error = RuntimeError("observer gone")
    scheduler = TestScheduler()
    xs = scheduler.create_cold_observable(on_next(50, A_CLOSED), on_error(100, error), on_next(200, B_CLOSED))
    results = scheduler.start(lambda: xs.pipe(debounce_per_path(100, scheduler)))
    assert results.messages == [on_error(300, error)]
    assert xs.subscriptions == [subscribe(200, 300)]
