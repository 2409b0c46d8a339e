"""debounce_per_path on virtual time: bursts per path, independent paths, completion and errors."""

from __future__ import annotations

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
