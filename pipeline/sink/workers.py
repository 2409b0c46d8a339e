"""Sink: the inside of the sink process, a pool of worker threads each owning one persistent session.

A worker's loop (`_serve`) takes jobs from the `JobBoard` and attempts them over its session; its
session opens and closes as `SessionLife` says, and waits as `RetryPolicy` says. Each attempt ends
in exactly one `UploadResult`: `attempt.failure_of` names the outcome of a failure, the `JobBoard`
decides what happens to the job next, and `attempt.settle` whether the local file goes. A local file
is deleted only after the server's copy was verified (or, on servers that cannot tell sizes, after
the 226 reply) and only if it is still the version (size, mtime, inode, ctime) it was when the
attempt began and no process has it open for writing (`pipeline.outbox.deletion.remove_uploaded`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from operators.model import Priority, UploadJob
from operators.remote_path import remote_name
from pipeline.outbox.file_state import file_state
from pipeline.sink import attempt
from pipeline.sink.board import JobBoard
from pipeline.sink.live_reserve import LiveReserve
from pipeline.sink.manifest import Manifests
from pipeline.sink.model import Outcome, SinkCounters, SinkGaveUp, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.pool import SessionPool
from pipeline.sink.result_log import ResultLog, day_file_delivered, unsafe_settings
from pipeline.sink.retry import RetryPolicy
from pipeline.sink.session_life import SessionLife
from pipeline.sink.ticket import Ticket
from pipeline.sink.transports import TargetParams, make_transport
from pipeline.transport import Delivered, Delivery, DeliveryProgress, Transport
from pipeline.transport.bandwidth import LiveFirst, TokenBucket
from pipeline.transport.errors import HashMismatch, TransportFailure

log = logging.getLogger("beemon.sink")
#: After the stop deadline cut the transfers, how long workers get to report and close.
ABORT_GRACE_SECONDS = 5.0


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
        self._counters = counters
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
            )
            for throttle in throttles
        ]
        self._throttle_of = {id(session): throttle for session, throttle in zip(self.sessions, throttles, strict=True)}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.gave_up = threading.Event()
        self.life = SessionLife(
            params, policy, self.retry, self.board, self.pool, self.stopping, self._give_up, counters
        )
        self.results_log = ResultLog()
        #: the per-day SHA256SUMS kept from verified deliveries (None: no outbox to journal in, or checksum "none")
        self.manifests: Manifests | None = None

    def start(self) -> None:
        risks = unsafe_settings(self.policy)
        if risks:
            log.warning("unsafe upload settings: %s", "; ".join(risks))
        if self.policy.connect_attempts:
            self.pool.hold_back()  # one session finds out whether the server answers and takes the login
        for index, session in enumerate(self.sessions):
            thread = threading.Thread(target=self._work, args=(session,), name=f"ftp-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def put(self, job: UploadJob) -> None:
        self.board.put(job)

    def stop(self, deadline: float) -> bool:
        """Take no new jobs, let transfers in flight finish within `deadline` s, then cut them.

        Returns True when every worker finished within the deadline. Queued jobs are dropped here:
        their files are still in the outbox for the next start.
        """
        self.stopping.set()
        self.board.close()
        self.pool.close()
        end = time.monotonic() + deadline
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        busy = [t for t in self._threads if t.is_alive()]
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
        return not busy

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
                    ticket = self.board.take(timeout=self.life.idle_wait(idle_since))
                if ticket is not None:
                    ahead = self._attempt(session, ticket)
                    idle_since = time.monotonic()
                elif self.stopping.is_set():
                    break
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
            if ahead is not None:
                self.board.untake(ahead)
            if self.stopping.is_set() and not self.aborting.is_set():
                self._manifests(session, idle=True, drain=True)
            session.close()
            if admitted:
                self.life.closed()

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

    # --- one attempt

    def _attempt(self, session: Transport, ticket: Ticket) -> Ticket | None:
        """Upload one job; returns the next job if one was taken during the rename (its data port is open)."""
        ahead: list[Ticket] = []

        def take_ahead() -> bool:
            """Take the next ready job now, so the rename's flight can ask for its data port."""
            if self.stopping.is_set():
                return False
            following = self.board.take(timeout=0)
            if following is not None:
                ahead.append(following)
            return following is not None

        try:
            self._upload(session, ticket, take_ahead)
        except Exception as error:  # a bug: the file stays, is tried again, and the worker goes on
            log.error("unexpected error while uploading %s (%s: %s)", ticket.path, type(error).__name__, error)
            log.debug("unexpected error while uploading %s", ticket.path, exc_info=True)
            session.close()
            if self.board.in_flight(ticket):
                self._finish(ticket, Outcome.RETRY, time.monotonic(), f"{type(error).__name__}: {error}")
        return ahead[0] if ahead else None

    def _upload(self, session: Transport, ticket: Ticket, take_ahead: Callable[[], bool]) -> None:
        started = time.monotonic()
        try:
            version = file_state(ticket.job.local_path)
        except PermissionError as error:  # a folder on the way is unreadable (mode 000)
            self._finish(ticket, Outcome.PARKED, started, attempt.unreadable(ticket.path, error))
            return
        if version is None:
            self._finish(ticket, Outcome.GONE, started, attempt.GONE_REPLY)
            return
        if (version.size, version.mtime_ns) != (ticket.job.size, ticket.job.mtime_ns):
            ticket.job = replace(ticket.job, size=version.size, mtime_ns=version.mtime_ns)
        try:
            report = self._deliver(session, ticket, take_ahead)
        except Exception as error:
            failure = attempt.failure_of(error, ticket.path)
            if failure is None:
                raise  # a bug: `_attempt` reports it
            if isinstance(error, HashMismatch) and self._counters is not None:
                self._counters.add("hash_mismatches")
            if failure.drop_session:
                session.close()
            if failure.outcome == Outcome.CHANGED:
                self._changed(ticket, started, failure.reply)
            else:
                self._finish(ticket, failure.outcome, started, failure.reply)
            return
        job = ticket.job
        if self._counters is not None and report.verified_by in ("hash", "size"):
            self._counters.add(f"verified_{report.verified_by}")
        if self.manifests is not None and report.sha256 is not None:
            self.manifests.record(job.remote_path, report.sha256)  # before the local file may go
        if job.day_file:
            day_file_delivered(job)
        # Compared again under a read lease right before any removal (see `remove_uploaded`).
        removal = attempt.settle(job, version, delete_after_upload=self.policy.delete_after_upload)
        if removal.changed:
            self._changed(ticket, started, report.reply, sent=report.bytes_sent)
            return
        reply = report.reply if report.verified is not None else f"{report.reply} (size not checked)"
        self._finish(
            ticket,
            Outcome.DELIVERED,
            started,
            reply,
            sent=report.bytes_sent,
            removed=removal.removed,
            kept=removal.kept,
        )

    def _deliver(self, session: Transport, ticket: Ticket, take_ahead: Callable[[], bool]) -> Delivered:
        """Hand the ticket's job to the transport: resuming only a `.part` of this very version (the board knows)."""
        job = ticket.job
        resume = self.board.parts.is_ours(job)
        ticket.progress = DeliveryProgress()  # what this attempt does on the server: the board reads it at the end
        if job.into_folder:  # the original API's queue_upload: a folder name puts the file inside it
            name = os.path.basename(job.local_path)
            remote = session.target_in_folder(job.remote_path, remote_name(name) or name)
            job = ticket.job = replace(job, remote_path=remote, into_folder=False)
        throttle = self._throttle_of.get(id(session))
        live = job.priority == Priority.LIVE
        if throttle is not None:
            throttle.backlog = not live
        if live:
            self.live_first.live_started()  # backlog transfers pause between blocks until it ends
        try:
            return self._send(session, ticket, job, resume, take_ahead)
        finally:
            if live:
                self.live_first.live_ended()

    def _send(
        self, session: Transport, ticket: Ticket, job: UploadJob, resume: bool, take_ahead: Callable[[], bool]
    ) -> Delivered:
        policy = self.policy
        return session.deliver(
            Delivery(
                job.local_path,
                job.remote_path,
                job.size,
                resume=resume,
                part_complete=resume and self.board.parts.is_complete(job),
                atomic_rename=policy.atomic_rename,
                verify_size=policy.verify_size,
                next_upload=take_ahead,
                may_replace=lambda existing: self.board.parts.may_replace(job, existing),
            ),
            ticket.progress,
        )

    def _changed(self, ticket: Ticket, started: float, reply: str, sent: int = 0) -> None:
        version = file_state(ticket.job.local_path)
        if version is None:
            self._finish(ticket, Outcome.GONE, started, attempt.GONE_REPLY)
            return
        newer = replace(ticket.job, size=version.size, mtime_ns=version.mtime_ns)
        self._finish(ticket, Outcome.CHANGED, started, reply, sent=sent, job=newer)

    def _finish(
        self,
        ticket: Ticket,
        outcome: Outcome,
        started: float,
        reply: str,
        *,
        sent: int = 0,
        job: UploadJob | None = None,
        removed: list[str] | None = None,
        kept: str = "",
    ) -> None:
        """Tell the board, the parent and the log how the attempt ended."""
        attempted = ticket.job
        seconds = time.monotonic() - started
        delay = self.board.finish(ticket, outcome, job)
        result = UploadResult(
            attempted.local_path, attempted.remote_path, sent, seconds, ticket.attempts, outcome, reply
        )
        if self._counters is not None:
            if outcome == Outcome.DELIVERED:
                self._counters.add("delivered")
            elif outcome.failed:
                self._counters.add("failed")
        self._emit(result)
        self.results_log.result(result, delay, removed or [], kept)
