"""Sink: the inside of the sink process, a pool of worker threads each owning one persistent session.

A worker's loop (`_serve`) takes jobs from the `JobBoard` and attempts them over its session; its
session opens and closes as `SessionLife` says, and waits as `RetryPolicy` says. One attempt, from
the local file's check to its `UploadResult` and the delete-or-keep decision, is the delivery step
(`pipeline.sink.delivery.DeliveryStep`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from operators.model import UploadJob
from pipeline.sink.board import JobBoard
from pipeline.sink.burst_loop import BurstLoop
from pipeline.sink.delivery import DeliveryStep
from pipeline.sink.live_reserve import LiveReserve
from pipeline.sink.manifest import Manifests
from pipeline.sink.model import SinkCounters, SinkGaveUp, UploadResult
from pipeline.sink.policy import ABORT_GRACE_SECONDS, UploadPolicy
from pipeline.sink.pool import SessionPool
from pipeline.sink.result_log import unsafe_settings
from pipeline.sink.retry import RetryPolicy
from pipeline.sink.session_life import SessionLife
from pipeline.sink.ticket import Ticket
from pipeline.sink.transports import TargetParams, make_transport
from pipeline.transport import Transport
from pipeline.transport.bandwidth import LiveFirst, TokenBucket
from pipeline.transport.errors import TransportFailure

log = logging.getLogger("beemon.sink")
#: While stopping, how often a worker that is still busy is asked again whether it is only logging in.
STOP_CHECK_SECONDS = 0.05


class Sink:
    """Workers, their sessions, the board and the pool; `put` jobs in, `stop` to end."""

    def __init__(
        self,
        params: TargetParams,
        policy: UploadPolicy,
        emit: Callable[[UploadResult | SinkGaveUp], None] = lambda result: None,
        counters: SinkCounters | None = None,
    ) -> None:
        self.params = params
        self.policy = policy
        self._emit = emit
        self.retry = RetryPolicy.of(policy)
        rate = policy.bandwidth_bytes_per_second
        self.board = JobBoard(
            policy.retry_base,
            policy.retry_max,
            counters,
            reserve=LiveReserve.of(policy.connections, rate),
        )
        self.pool = SessionPool(policy.connections, regrow_seconds=self.retry.regrow_seconds)
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        self.live_first = LiveFirst(TokenBucket(rate) if rate > 0 else None)
        throttles = [self.live_first.for_session() for _ in range(policy.connections)]
        self.sessions = [
            make_transport(
                params,
                throttle=throttle,
                use_sendfile=policy.use_sendfile,
                aborted=self.aborting,
                checksum=policy.checksum == "sha256",
                atomic_rename=policy.atomic_rename,
            )
            for throttle in throttles
        ]
        self.step = DeliveryStep(
            policy,
            self.board,
            self.live_first,
            self.stopping,
            emit,
            counters,
            throttle_of={id(session): throttle for session, throttle in zip(self.sessions, throttles, strict=True)},
        )
        #: the one thread that drives the sessions' runs of small files (`pipeline.sink.burst_loop`)
        self.lean = BurstLoop(self.step, self.stopping)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.gave_up = threading.Event()
        self.stopped = threading.Event()  # `stop` returned: a worker still running was left logging in
        self.life = SessionLife(
            params, policy, self.retry, self.board, self.pool, self.stopping, self._give_up, counters
        )

    @property
    def manifests(self) -> Manifests | None:
        """The per-day SHA256SUMS kept from verified deliveries (None: no outbox to journal in, or checksum "none")."""
        return self.step.manifests

    @manifests.setter
    def manifests(self, manifests: Manifests | None) -> None:
        self.step.manifests = manifests

    def start(self) -> None:
        risks = unsafe_settings(self.policy)
        if risks:
            log.warning("unsafe upload settings: %s", "; ".join(risks))
        # One session finds out whether the server answers and takes the login (a wrong password counts
        # once against the account, not once per session); the others open ahead meanwhile.
        self.pool.hold_for_first_login()
        for index, session in enumerate(self.sessions):
            thread = threading.Thread(target=self._work, args=(session,), name=f"ftp-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def put(self, job: UploadJob) -> None:
        self.board.put(job)

    def put_many(self, jobs: list[UploadJob]) -> None:
        self.board.put_many(jobs)

    def stop(self, deadline: float) -> bool:
        """Take no new jobs, let transfers in flight finish within `deadline` s, then cut them.

        Returns True when every worker finished within the deadline. Queued jobs are dropped here:
        their files are still in the outbox for the next start. A worker still opening its session
        is not waited for: it holds no transfer, and a server that never answers would hold the
        stop for the whole deadline (`run --once` with nothing left to send, a station shutting down).
        """
        self.stopping.set()
        self.board.close()
        self.pool.close()
        end = time.monotonic() + deadline
        for thread in self._threads:
            self._join_unless_logging_in(thread, end)
        busy = [t for t in self._threads if t.is_alive() and not self.life.logging_in(t)]
        if busy:
            log.warning(
                "stop deadline (%.1f s) passed with %d transfer(s) in flight: cut; their files stay in the outbox",
                deadline,
                len(busy),
            )
            self.aborting.set()
            for session in self.sessions:
                session.abort()
            for thread in busy:
                thread.join(ABORT_GRACE_SECONDS)
        self.stopped.set()
        return not busy

    def _join_unless_logging_in(self, thread: threading.Thread, end: float) -> None:
        """Wait until `thread` ends or `end` (monotonic) passes, unless it is (or becomes) a worker logging in."""
        while thread.is_alive() and not self.life.logging_in(thread):
            left = end - time.monotonic()
            if left <= 0:
                return
            thread.join(min(left, STOP_CHECK_SECONDS))

    # --- one worker

    def _work(self, session: Transport) -> None:
        """A worker's life. Nothing ends it but `stop`: an error it did not foresee is logged in one line and
        the worker goes on with a fresh session after a pause (a dead worker would leave a live process that
        uploads nothing, and no supervisor would notice)."""
        while not self.stopping.is_set():
            try:
                self._serve(session)
            except Exception as error:  # a bug: keep the worker, say what happened
                log.error("upload worker error (%s: %s): reconnecting", type(error).__name__, error)
                log.debug("upload worker error", exc_info=True)
                session.close()
                self.stopping.wait(self.retry.after_worker_error)

    def _serve(self, session: Transport) -> None:
        backoff = self.retry.backoff()
        admitted = False
        ahead: Ticket | None = None  # the next job: taken during the last upload's rename, or before connecting
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                if not admitted:
                    self.step.settle_pending(session)  # the last file's result before any wait to reconnect
                    if ahead is not None:  # not held through a reconnect: another worker may take it now
                        self.board.untake(ahead)
                        ahead = None
                    admitted, ahead = self.life.grow(session, backoff)
                    idle_since = time.monotonic()
                    continue
                ticket, ahead = ahead or self.board.take(timeout=0), None
                self._manifests(session, idle=ticket is None)
                if ticket is None:
                    session.idle()
                    nudges = self.board.nudges  # before the wait is chosen: a last round asked meanwhile is not missed
                    ticket = self.board.take(timeout=self._idle_wait(idle_since), nudges=nudges)
                if ticket is not None:
                    ahead = self._attempt(session, ticket)
                    idle_since = time.monotonic()
                elif self.stopping.is_set():
                    break
                elif self.manifests is not None and session.connected and self.manifests.due_in() == 0:
                    continue  # run --once's last round of manifests (`finish_manifests`): one goes up now
                elif time.monotonic() - idle_since >= self.policy.idle_close_seconds and self.life.retire():
                    log.debug(
                        "closed a session idle for %.1f s (the stations sharing the server may use it)",
                        time.monotonic() - idle_since,
                    )
                    session.close()
                    self.pool.release()
                    admitted = False
                    continue
                else:
                    try:
                        session.keep_alive()
                    except TransportFailure as failure:
                        log.debug("idle session lost (%s): reconnecting", failure)
                if not session.connected:
                    admitted = False
                    self.life.closed()
        finally:
            self.step.settle_pending(session)  # before the manifests' last upload: its line is in the journal then
            if ahead is not None:
                self.board.untake(ahead)
            if self.stopping.is_set() and not self.aborting.is_set() and not self.stopped.is_set():
                self._manifests(session, idle=True, drain=True)
            session.close(wait_reply=not self.stopping.is_set())  # stopping: the goodbye's reply is not waited for
            if admitted:
                self.life.closed()

    def _attempt(self, session: Transport, ticket: Ticket) -> Ticket | None:
        """Upload `ticket`: the lean way with the small files that follow it (lent to the loop), or the full way.

        Returns the next job taken ahead (its data port asked in the last rename's flight), if any."""
        if not self.step.lean(session, ticket):
            return self.step.run(session, ticket)
        self.step.settle_pending(session)  # the last file's bookkeeping, before its session is lent
        loan = self.lean.lend(session, ticket)
        stop, at = loan.stopped, loan.stopped_at
        if log.isEnabledFor(logging.DEBUG):
            end = "as planned" if stop is None else f"at {at.path if at is not None else '?'}: {stop.error}"
            log.debug("lean run: %d file(s) verified, ended %s", loan.verified, end)
        if stop is not None and at is not None:
            at.lean = False  # the full way from now on: it meets the case with all its rules
            if stop.untake:
                log.debug("%s goes the full way (%s)", at.path, stop.error)
                self.board.untake(at)
            else:
                started = stop.file.token[2] if stop.file is not None else time.monotonic()
                if not self.step.failed(session, at, started, stop.error):
                    self.step.unexpected(at, stop.error)
                    session.close()
        return loan.ahead

    def finish_manifests(self, attempts: int, on_settled: Callable[[dict[str, str]], None]) -> None:
        """`run --once` has no more jobs: every pending day's manifest goes up now, each tried `attempts` times at
        most on the jobs' retry schedule, over the workers' sessions; `on_settled(days left -> why)` once done."""
        if self.manifests is None:
            on_settled({})
            return
        self.manifests.finish(attempts, self.retry, on_settled)
        self.board.nudge()  # the idle workers stop waiting for a job

    def _idle_wait(self, idle_since: float) -> float:
        """How long an idle worker waits for a job: until its NOOP or close, or the next manifest of the last round."""
        wait = self.life.idle_wait(idle_since)
        return wait if self.manifests is None else min(wait, self.manifests.due_in())

    def _manifests(self, session: Transport, *, idle: bool, drain: bool = False) -> None:
        """Upload the manifests that are due (`Manifests.flush`) over this worker's session; at stop, all."""
        if self.manifests is None or not session.connected:
            return
        while self.manifests.flush(session, self.board.remote_paths, idle=idle) and drain and session.connected:
            pass

    def _give_up(self, reason: str) -> None:
        """Stop every worker and tell the parent why, once (the files stay in the outbox)."""
        with self._lock:
            if self.gave_up.is_set():
                return
            self.gave_up.set()
        log.debug("giving up: %s", reason)
        self._emit(SinkGaveUp(reason))
        self.stopping.set()
        self.board.close()
        self.pool.close()
