"""The session pool: shrinking on 421, growing back one at a time, the sink-wide pause."""

from __future__ import annotations

import threading

from pipeline.sink.pool import SessionPool
from tests.helpers import Clock


def test_pool_shrinks_on_421_and_grows_back_one_at_a_time():
    clock = Clock()
    pool = SessionPool(3, regrow_seconds=10, clock=clock)
    assert pool.admit() and pool.admit() and pool.admit()
    assert pool.too_many() == 2  # the third got 421: the other two stay
    pool.release()
    blocked = threading.Thread(target=pool.admit, daemon=True)
    blocked.start()
    blocked.join(0.05)
    assert blocked.is_alive()
    clock.now += 10
    with pool._cond:
        pool._cond.notify_all()
    blocked.join(2)
    assert not blocked.is_alive()
    assert (pool.limit, pool.active) == (3, 3)


def test_pool_never_shrinks_below_one_and_close_releases_waiters():
    pool = SessionPool(2, regrow_seconds=100)
    assert pool.admit()
    assert pool.too_many() == 1
    assert pool.too_many() == 1
    results = []
    waiter = threading.Thread(target=lambda: results.append(pool.admit()))
    waiter.start()
    pool.close()
    waiter.join(2)
    assert results == [False]


def test_after_a_421_the_pool_admits_nobody_until_the_refused_workers_backoff_passed():
    """Contending stations take turns: a 421 pauses the whole sink for a jittered backoff, not only its worker."""
    clock = Clock()
    pool = SessionPool(4, regrow_seconds=100, clock=clock)
    assert pool.admit()
    assert pool.too_many(pause=3.0) == 1
    pool.release()
    assert not pool.try_admit()  # a slot is free, but the pause is not over
    clock.now += 3.0
    assert pool.try_admit()
    assert not pool.try_admit()  # and the limit is the one session that got in (none: at least one)


def test_only_the_pool_waiting_for_its_first_login_lets_workers_open_ahead():
    pool = SessionPool(4, regrow_seconds=1.0)
    assert not pool.opening_ahead
    pool.hold_for_first_login()
    assert pool.awaiting_first_login and not pool.opening_ahead and pool.limit == 1
    assert pool.admit() and not pool.try_admit()
    pool.greeted()  # the server answers the first session: the others may open their connections
    assert pool.opening_ahead
    pool.hold_back()  # refused: the next probe comes after the backoff; nobody opens ahead for that long
    assert not pool.opening_ahead and not pool.awaiting_first_login and pool.limit == 1
    pool.hold_for_first_login()
    pool.logged_in()
    assert not pool.opening_ahead and pool.limit == 4
    pool.hold_for_first_login()
    pool.close()
    assert not pool.opening_ahead


def test_a_421_to_the_first_login_stops_the_others_opening_ahead():
    """The others open ahead only while the pool waits for its first login, not for a 421's cap to lift:
    they would add connections to a server that just said it has too many."""
    pool = SessionPool(4, regrow_seconds=1.0)
    pool.hold_for_first_login()
    assert pool.admit()
    pool.greeted()
    assert pool.opening_ahead
    pool.too_many(pause=5.0)
    pool.release()
    assert not pool.opening_ahead


def test_a_pool_is_turned_away_by_a_refused_login_or_a_421_pause_not_by_its_first_login_succeeding():
    """Connections opened ahead are closed while the server turns the pool away, and kept for their login
    once the first one succeeded (closing them then would cost a server capped per address a 421)."""
    clock = Clock()
    pool = SessionPool(4, regrow_seconds=1.0, clock=clock)
    pool.hold_for_first_login()
    assert not pool.turned_away
    pool.logged_in()
    assert not pool.turned_away
    pool.hold_back()  # a later login refused
    assert pool.turned_away
    pool.logged_in()
    assert pool.admit() and not pool.turned_away
    pool.too_many(pause=5.0)  # 421
    assert pool.turned_away
    clock.now += 5.0
    assert not pool.turned_away
