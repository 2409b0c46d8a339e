"""SessionPool: how many FTP sessions the sink may hold open, shrinking when the server says 421.

Servers cap connections per address or in total and answer 421 beyond the cap. Hammering them
with the full `connections` count would cost a failed login per worker per backoff, so after a 421
the limit drops to the sessions that did get in (at least one), and grows back by one session
every `regrow_seconds` to find out whether the cap was lifted. Workers above the limit block on a
condition variable until a slot opens or the sink stops.

A refused login (wrong password, untrusted certificate) holds the pool back to one session until a
login succeeds: every failed login counts against the account on servers with a lockout policy
(fail2ban), and more sessions would only fail more often.
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

    def admit(self) -> bool:
        """Block until this worker may open a session (True), or the pool closed (False)."""
        with self._cond:
            while not self._closed:
                self._regrow(self._clock())
                if self.active < self.limit:
                    self.active += 1
                    return True
                wait = self._regrow_at - self._clock() if self.limit < self.size and not self._held else None
                self._cond.wait(None if wait is None else max(wait, 0.001))
            return False

    def release(self) -> None:
        """A session admitted earlier closed (or never opened)."""
        with self._cond:
            self.active = max(0, self.active - 1)
            self._cond.notify()

    def too_many(self) -> int:
        """The server answered 421 to an admitted worker: cap the pool at the other open sessions."""
        with self._cond:
            self.limit = max(1, min(self.limit, self.active - 1))
            self._regrow_at = self._clock() + self.regrow_seconds
            return self.limit

    def hold_back(self) -> None:
        """A login was refused: one session at a time until a login succeeds (`logged_in`)."""
        with self._cond:
            self._held = True
            self.limit = 1

    def logged_in(self) -> None:
        """A login succeeded: a pool held back by `hold_back` opens to its full size again."""
        with self._cond:
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
