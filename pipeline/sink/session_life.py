"""The life of the workers' sessions: when one opens, when it closes, and what a failed connect costs.

One worker connects at start and stays connected (warm, NOOPing when idle) for the next file;
another connects only when a job is ready that no idle session is waiting for (`grow`), and closes
its session once idle for `idle_close_seconds`, unless it is the last one open (`retire`). A
connect is admitted by the `SessionPool`; after a failure (a 421 included, which also shrinks the
pool) the worker gives its job back and waits `RetryPolicy.connect_delay`, so contending stations
take turns. With `connect_attempts` (run --once) the sink gives up after that many failed connects
in a row, and at the first refused login. Until a first login succeeds only one session tries (the
pool starts held back); once the server greeted that first session and while it
logs in, a worker with a job opens its connection ahead (`SessionPool.opening_ahead`: the welcome
read, nothing of the account sent) and logs in on it once admitted. An outage is one warning and one line when it ends.
"""

from __future__ import annotations

import logging
import posixpath
import threading
import time
from collections.abc import Callable

from pipeline.sink.board import JobBoard
from pipeline.sink.model import SinkCounters
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.pool import SessionPool
from pipeline.sink.retry import Backoff, ConnectAttempts, RetryPolicy
from pipeline.sink.ticket import Ticket
from pipeline.sink.transports import TargetParams
from pipeline.transport import Transport
from pipeline.transport.base import KnowsFirstFolder, OpensAhead
from pipeline.transport.errors import SessionFailure, TooManyConnections, TransportFailure, scrub

log = logging.getLogger("beemon.sink")


class _Outage:
    """One warning when the server becomes unreachable and one line when it is back, not one per worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.down_since: float | None = None

    def failed(self) -> bool:
        """Record a failed connect; True for the first failure of an outage."""
        with self._lock:
            if self.down_since is None:
                self.down_since = time.monotonic()
                return True
            return False

    def recovered(self) -> float | None:
        """Record a successful connect; the outage's length when this ends one."""
        with self._lock:
            since, self.down_since = self.down_since, None
            return None if since is None else time.monotonic() - since


class SessionLife:
    """Open sessions and connects under way, shared by the workers of one sink."""

    def __init__(
        self,
        params: TargetParams,
        policy: UploadPolicy,
        retry: RetryPolicy,
        board: JobBoard,
        pool: SessionPool,
        stopping: threading.Event,
        give_up: Callable[[str], None],
        counters: SinkCounters | None = None,
    ) -> None:
        self.params = params
        self.policy = policy
        self.retry = retry
        self.board = board
        self.pool = pool
        self.stopping = stopping
        self._give_up = give_up
        self._counters = counters
        self._lock = threading.Lock()
        self._outage = _Outage()
        self._open_sessions = 0
        self._connecting = 0  # workers between `admit` and the end of their login
        self._logging_in: set[int | None] = set()  # their threads' idents (`logging_in`)
        self._connects = ConnectAttempts(policy.connect_attempts, retry)

    def idle_wait(self, idle_since: float) -> float:
        """How long an idle worker waits for a job before its next NOOP, or before its session may close."""
        until_close = idle_since + self.policy.idle_close_seconds - time.monotonic()
        if until_close <= 0:  # this one stays warm: the last open session
            return self.policy.idle_noop_seconds
        return min(self.policy.idle_noop_seconds, until_close)

    def logging_in(self, thread: threading.Thread) -> bool:
        """Whether `thread` is opening its session (waiting for room, connecting, logging in, or the backoff after).

        It holds no transfer then (a job it took for the new session is only queued): a stop need not wait for it.
        """
        with self._lock:
            return thread.ident in self._logging_in

    def retire(self) -> bool:
        """Whether this idle session may close: not when it is the last one open (that one stays warm)."""
        with self._lock:
            if self._open_sessions <= 1:
                return False
            self._open_sessions -= 1
            self._publish_sessions()
            return True

    def grow(self, session: Transport, backoff: Backoff) -> tuple[bool, Ticket | None]:
        """A worker without a session: connect when none is open (the warm one) or when a job needs it.

        Returns (connected, the job to upload first).
        """
        with self._lock:
            warm = self._open_sessions + self._connecting == 0
            if warm:
                self._connecting += 1
                self._logging_in.add(threading.get_ident())
        ticket = None
        if warm:
            admitted = self.pool.admit()
        else:
            ticket = self.board.take(timeout=self.policy.idle_noop_seconds, cold=True)
            if ticket is None:
                return False, None
            admitted = self.pool.try_admit()
            if not admitted:  # the pool is at its limit (after a 421): the open sessions will take it
                self.board.untake(ticket)
                self._open_ahead(session)
                self.pool.wait_for_room(self.policy.idle_noop_seconds)
                return False, None
            with self._lock:
                self._connecting += 1
                self._logging_in.add(threading.get_ident())
        try:
            connected = admitted and self._open(session, backoff, ticket)
        finally:
            with self._lock:
                self._connecting -= 1
                self._logging_in.discard(threading.get_ident())
        return connected, ticket if connected else None

    def _open_ahead(self, session: Transport) -> None:
        """While the first login is under way, open this worker's connection without logging in (see the module
        docstring); a failure here is nobody's: the connect after admission tries again and counts. Once the server
        turned the pool away (a refused login, a 421), one opened ahead is closed: it would stay idle on the
        server until the server timed it out, taking a slot of its per-address cap."""
        if not isinstance(session, OpensAhead) or session.connected:
            return
        if self.pool.turned_away:
            session.close()  # (nothing to do when none is open)
            return
        if not self.pool.opening_ahead:
            return
        with self._lock:
            self._logging_in.add(threading.get_ident())
        try:
            if not session.open_ahead():
                log.debug("opening a connection ahead of the first login failed: it opens when admitted")
            elif self.pool.turned_away:  # the first login was refused (or met 421) while this one opened
                session.close()
        finally:
            with self._lock:
                self._logging_in.discard(threading.get_ident())

    def _open(self, session: Transport, backoff: Backoff, ticket: Ticket | None = None) -> bool:
        """Connect once (the pool admitted it); on failure give `ticket` back, wait the backoff; True when connected."""
        if ticket is not None and not ticket.job.into_folder and isinstance(session, KnowsFirstFolder):
            session.first_folder(posixpath.dirname(ticket.job.remote_path))  # made in the login's flight
        try:
            if self.pool.awaiting_first_login and isinstance(session, OpensAhead):
                session.open_ahead(quiet=False)  # one attempt, as `connect`'s, failing as it would
                self.pool.greeted()
            session.connect()
        except SessionFailure as failure:
            if ticket is not None:
                self.board.untake(ticket)
            # Refused credentials or certificate: this worker probes again after retry_max, keeping
            # its slot meanwhile, and the held-back pool lets no other worker try in between.
            self.pool.hold_back()
            if self._connects.limit:
                self._give_up(self._login_refused(failure))
            else:
                self._connect_failed(failure, backoff, None, self.retry.connect_delay(backoff, login_refused=True))
            self.pool.release()
            return False
        except TransportFailure as failure:
            if ticket is not None:
                self.board.untake(ticket)
            if self._connects.limit and not isinstance(failure, TooManyConnections):
                self._probe_failed(failure)  # waits holding the slot: one prober at a time
                self.pool.release()
                return False
            if self._connects.limit and self._connects.exhausted(self._connects.failed()):
                self.pool.release()
                self._give_up(self._unreachable(failure))
                return False
            delay = self.retry.connect_delay(backoff)
            # Shrink while this worker still counts as active: the limit is "the others that got in".
            limit = self.pool.too_many(pause=delay) if isinstance(failure, TooManyConnections) else None
            self.pool.release()
            self._connect_failed(failure, backoff, limit, delay)
            return False
        backoff.reset()
        self._connects.connected()
        self.pool.logged_in()
        with self._lock:
            self._open_sessions += 1
            self._publish_sessions()
        down_for = self._outage.recovered()
        if down_for is not None:
            log.info("connected to %s:%d again after %.1f s", self.params.host, self.params.port, down_for)
        return True

    def closed(self) -> None:
        self.pool.release()
        with self._lock:
            self._open_sessions -= 1
            self._publish_sessions()

    def _publish_sessions(self) -> None:
        if self._counters is not None:
            self._counters.set(sessions=self._open_sessions)

    def _connect_failed(self, failure: TransportFailure, backoff: Backoff, limit: int | None, delay: float) -> None:
        """Log the failure (once per outage, or per episode of 421s) and wait `delay` (`RetryPolicy.connect_delay`)."""
        first = self._outage.failed()
        where = f"{self.params.host}:{self.params.port}"
        if limit is not None and not first:
            log.debug("%s answered 421 again: at most %d session(s)", where, limit, extra={"reply": failure.reply})
        elif limit is not None:
            log.warning(
                "%s answered 421 (too many connections): using at most %d session(s), trying more again in %.0f s",
                where,
                limit,
                self.pool.regrow_seconds,
                extra={"reply": failure.reply},
            )
        elif first and isinstance(failure, SessionFailure):
            log.error(
                "cannot log in to %s: %s (%s); retrying",
                where,
                failure,
                self.params.login_check,
                extra={"reply": failure.reply},
            )
        elif first:
            log.warning(
                "cannot reach %s: %s; retrying with backoff (at most %.0f s apart)",
                where,
                failure,
                self.policy.retry_max,
                extra={"reply": failure.reply},
            )
        log.debug("connect attempt %d failed: %s; next try in %.2f s", backoff.failures, failure, delay)
        self.stopping.wait(delay)

    def _login_refused(self, failure: TransportFailure) -> str:
        where = f"{self.params.host}:{self.params.port}"
        if "certificate" in str(failure).lower() and getattr(self.params, "secure", False):
            check = "check ftp.ca_file and ftp.verify"
        else:
            check = self.params.login_check
        # Masked where printed: the server's words may echo what it was sent, the rest is ours.
        return f"cannot log in to {where}: {scrub(str(failure), self.params.password)}; {check}"

    def _unreachable(self, failure: TransportFailure) -> str:
        where = f"{self.params.host}:{self.params.port}"
        last = scrub(str(failure), self.params.password)
        return (
            f"cannot reach {where} ({self._connects.failures} connection attempt(s) failed, the last: {last});"
            f" {self.params.reach_check}"
        )

    def _probe_failed(self, failure: TransportFailure) -> None:
        """A connect failed with `connect_attempts` set: give up after that many in a row, else wait the backoff."""
        failures = self._connects.failed()
        if self._connects.exhausted(failures):
            self._give_up(self._unreachable(failure))
            return
        delay = self._connects.next_delay()
        if failures == 1:
            log.warning(
                "cannot reach %s:%d: %s; %d more attempt(s) with backoff",
                self.params.host,
                self.params.port,
                failure,
                self.policy.connect_attempts - failures,
                extra={"reply": failure.reply},
            )
        log.debug("connect attempt %d failed: %s; next try in %.2f s", failures, failure, delay)
        self.stopping.wait(delay)
