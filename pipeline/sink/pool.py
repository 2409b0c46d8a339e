"""SessionPool: how many FTP sessions the sink may hold open, shrinking when the server says 421.

Servers cap connections per address or in total and answer 421 beyond the cap. Hammering them
with the full `connections` count would cost a failed login per worker per backoff, so after a 421
the limit drops to the sessions that did get in (at least one), and grows back by one session
every `regrow_seconds` to find out whether the cap was lifted; and no worker of this sink connects
again before the refused worker's backoff (full jitter) has passed, so that stations contending
for a full server try at scattered moments and take turns, rather than all at once. Workers above
the limit block on a condition variable until a slot opens or the sink stops.

A refused login (wrong password, untrusted certificate) holds the pool back to one session until a
login succeeds: every failed login counts against the account on servers with a lockout policy
(fail2ban), and more sessions would only fail more often. The sink starts held back the same way
(`hold_for_first_login`; `run` and `run --once` alike): one session finds out whether the account is
taken, so a wrong password costs one refused login at start, not one per session; once the server has
greeted it (`greeted`: it answers, so nobody else adds attempts at a dead or silent port), the others
may open their connections and read the welcome (`opening_ahead`), sending nothing of the account
before that first login succeeded, so they log in one round trip sooner.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class SessionPool:
    """Admission control for the workers' sessions (`admit` before connecting, `release` after closing)."""

    def __init__(self, size: int, regrow_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.regrow_seconds = regrow_seconds
        self.limit = size
        self.active = 0
        self._regrow_at = 0.0
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False
        self._held = False
        self._first_login = False  # held back at the start, not after a refusal: `opening_ahead`
        self._greeted = False  # the first session's connection is open and greeted
        self._not_before = 0.0  # after a 421: no admission before this time

    def admit(self) -> bool:
        """Block until this worker may open a session (True), or the pool closed (False)."""
        with self._cond:
            while not self._closed:
                now = self._clock()
                self._regrow(now)
                if self.active < self.limit and now >= self._not_before:
                    self.active += 1
                    return True
                wait = self._regrow_at - now if self.limit < self.size and not self._held else None
                if now < self._not_before:
                    wait = self._not_before - now if wait is None else min(wait, self._not_before - now)
                self._cond.wait(None if wait is None else max(wait, 0.001))
            return False

    def try_admit(self) -> bool:
        """Admit this worker now if a slot is free (True); never blocks."""
        with self._cond:
            now = self._clock()
            self._regrow(now)
            if self._closed or self.active >= self.limit or now < self._not_before:
                return False
            self.active += 1
            return True

    def wait_for_room(self, timeout: float) -> None:
        """Block until a slot may be free (a release, a regrow, the 421 pause over), the pool closed, or `timeout`."""
        with self._cond:
            now = self._clock()
            if self._closed or (self.active < self.limit and now >= self._not_before):
                return
            if now < self._not_before:
                timeout = min(timeout, self._not_before - now)
            self._cond.wait(max(timeout, 0.001))

    def release(self) -> None:
        """A session admitted earlier closed (or never opened)."""
        with self._cond:
            self.active = max(0, self.active - 1)
            self._cond.notify()

    def too_many(self, pause: float = 0.0) -> int:
        """The server answered 421 to an admitted worker: cap the pool at the other open sessions,
        and admit nobody for `pause` seconds (the refused worker's backoff)."""
        with self._cond:
            now = self._clock()
            self._first_login = False  # nobody opens ahead to a server that said it is full
            self.limit = max(1, min(self.limit, self.active - 1))
            self._regrow_at = now + self.regrow_seconds
            self._not_before = max(self._not_before, now + pause)
            self._cond.notify_all()  # the workers waiting for room close what they opened ahead
            return self.limit

    def hold_back(self) -> None:
        """A login was refused: one session at a time until a login succeeds (`logged_in`)."""
        with self._cond:
            self._held = True
            self._first_login = False
            self.limit = 1
            self._cond.notify_all()  # the workers waiting for room close what they opened ahead

    def hold_for_first_login(self) -> None:
        """Held back as after a refusal until the first login succeeds, but the others may open ahead."""
        with self._cond:
            self._held = True
            self._first_login = True
            self.limit = 1

    def greeted(self) -> None:
        """The first session's connection is open and the server greeted it: the others may open theirs."""
        with self._cond:
            if self._first_login and not self._greeted:
                self._greeted = True
                self._cond.notify_all()  # the workers in `wait_for_room` look again

    @property
    def opening_ahead(self) -> bool:
        """Whether a worker waiting for admission may open its connection now (and log in once admitted):
        the pool waits for its first login only (not for a refused one to heal or a 421's cap to lift), and
        the server greeted the first session."""
        with self._cond:
            return self._first_login and self._greeted and self._held and not self._closed

    @property
    def turned_away(self) -> bool:
        """Whether the server turned this pool away and it holds back for it: a login refused (until one
        succeeds), or a 421's pause: no connection opened ahead is to be kept idle on the server then."""
        with self._cond:
            refused = self._held and not self._first_login
            return not self._closed and (refused or self._clock() < self._not_before)

    @property
    def awaiting_first_login(self) -> bool:
        """Whether the pool is held back for its first login (the first session opens ahead and says `greeted`)."""
        with self._cond:
            return self._first_login and self._held and not self._closed

    def logged_in(self) -> None:
        """A login succeeded: a pool held back by `hold_back` opens to its full size again."""
        with self._cond:
            self._first_login = False
            if self._held:
                self._held = False
                self.limit = self.size
                self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _regrow(self, now: float) -> None:
        if self.limit < self.size and not self._held and now >= self._regrow_at:
            self.limit += 1
            self._regrow_at = now + self.regrow_seconds
            self._cond.notify()
