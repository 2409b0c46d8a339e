"""A worker's delivery step: one ticket over one session, from the local file's check to its result.

Each attempt ends in exactly one `UploadResult`: `attempt.failure_of` names the outcome of a
failure, the `JobBoard` decides what happens to the job next, and `attempt.settle` whether the
local file goes. A local file is deleted only after the server's copy was verified (or, on servers
that cannot tell sizes, after the 226 reply) and only if it is still the version (size, mtime,
inode, ctime) it was when the attempt began and no process has it open for writing
(`pipeline.outbox.deletion.remove_uploaded`).

When the worker has taken the next job during the rename, the delivered file's bookkeeping (its
manifest line, fsync'ed; the local delete; its result and log lines) is done during the next file's
first round trip, or once a longer file's first block is on its way (`Delivery.meanwhile`), instead of
before it (never after the whole of a long transfer): still after the verification, in the
same order, and always done (after the next delivery, if the transport never waited).
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeGuard, cast

from operators.model import Priority, UploadJob
from operators.remote_path import remote_name
from pipeline.outbox.deletion import Removal
from pipeline.outbox.file_state import FileState, file_state
from pipeline.sink import attempt
from pipeline.sink.board import JobBoard
from pipeline.sink.manifest import Manifests
from pipeline.sink.model import Outcome, SinkCounters, SinkGaveUp, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.result_log import ResultLog, day_file_delivered
from pipeline.sink.ticket import Ticket
from pipeline.transport import Delivered, Delivery, DeliveryProgress, Transport
from pipeline.transport.bandwidth import LiveFirst, SessionThrottle
from pipeline.transport.errors import HashMismatch
from pipeline.transport.runs import BurstFile, LeanTransport

log = logging.getLogger("beemon.sink")
#: how a delivery was checked (`Delivered.verified_by`) -> the count it adds one to
_VERIFIED = {"hash": ("verified_hash",), "size": ("verified_size",)}


@dataclass
class DeliveryStep:
    """What a worker needs to run one attempt: the board, the policy, the bandwidth shares, where results go."""

    policy: UploadPolicy
    board: JobBoard
    live_first: LiveFirst
    stopping: threading.Event
    emit: Callable[[UploadResult | SinkGaveUp], None]
    counters: SinkCounters | None = None
    #: each session's share of the bandwidth cap, by `id(session)`
    throttle_of: dict[int, SessionThrottle] = field(default_factory=dict)
    results_log: ResultLog = field(default_factory=ResultLog)
    #: the per-day SHA256SUMS journal (`pipeline.sink.manifest`); None: no manifests kept
    manifests: Manifests | None = None
    #: by `id(session)`: the bookkeeping of the file that session delivered last, left for its next delivery
    _pending: dict[int, Callable[[], None]] = field(default_factory=dict)

    def run(self, session: Transport, ticket: Ticket) -> Ticket | None:
        """Upload one job; returns the next job if one was taken during the rename (its data port is open)."""
        ahead: list[Ticket] = []

        def take_ahead() -> bool:
            """Take the next ready job now, so the rename's flight can ask for its data port."""
            if self.stopping.is_set():
                return False
            following = self.board.take(timeout=0)
            if following is not None:
                ahead.append(following)
                return True
            # No job follows, but the day's manifest may: its put then finds its data port ready.
            manifests = self.manifests
            return manifests is not None and manifests.due_after(ticket.job.remote_path, self.board.remote_paths)

        previous = self._pending.pop(id(session), None)
        meanwhile = _Once(previous)
        try:
            self._upload(session, ticket, take_ahead, meanwhile, defer=lambda: bool(ahead))
        except Exception as error:  # a bug: the file stays, is tried again, and the worker goes on
            self.unexpected(ticket, error)
            session.close()
        finally:
            meanwhile()  # the transport did not wait for the server (or failed before): now
        return ahead[0] if ahead else None

    def settle_pending(self, session: Transport) -> None:
        """Do now the bookkeeping of the file `session` delivered last, if it is still left for its next delivery
        (the worker does not go on with it: it stops, or reconnects first)."""
        previous = self._pending.pop(id(session), None)
        if previous is not None:
            previous()

    def unexpected(self, ticket: Ticket, error: Exception) -> None:
        """A bug while handling `ticket`: say so in one line; the file stays and is tried again."""
        log.error("unexpected error while uploading %s (%s: %s)", ticket.path, type(error).__name__, error)
        log.debug("unexpected error while uploading %s", ticket.path, exc_info=True)
        if self.board.in_flight(ticket):
            self._finish(ticket, Outcome.RETRY, time.monotonic(), f"{type(error).__name__}: {error}")

    def _upload(
        self,
        session: Transport,
        ticket: Ticket,
        take_ahead: Callable[[], bool],
        meanwhile: Callable[[], None],
        *,
        defer: Callable[[], bool],
    ) -> None:
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
            report = self._deliver(session, ticket, take_ahead, meanwhile)
            if report.probed is not None and self.manifests is not None:
                self.manifests.probed(ticket.job.remote_path, report.probed)
        except Exception as error:
            if not self.failed(session, ticket, started, error):
                raise  # a bug: `run` reports it
            return
        if defer():  # the next job is taken: this bookkeeping rides in its first round trip
            self._pending[id(session)] = lambda: self._delivered_safely(ticket, version, report, started)
        else:
            self._delivered(ticket, version, report, started)

    def failed(self, session: Transport, ticket: Ticket, started: float, error: BaseException) -> bool:
        """Report an attempt that ended in `error` (the session closed when it is out of step); False when
        `error` is not a delivery's failure but a bug."""
        failure = attempt.failure_of(error, ticket.path)
        if failure is None:
            return False
        if isinstance(error, HashMismatch) and self.counters is not None:
            self.counters.add("hash_mismatches")
        if failure.drop_session:
            session.close()
        if failure.outcome == Outcome.CHANGED:
            self._changed(ticket, started, failure.reply)
        else:
            self._finish(ticket, failure.outcome, started, failure.reply)
        return True

    # --- the lean way for small files (`pipeline.sink.burst_loop` drives it)

    def lean(self, session: Transport, ticket: Ticket) -> TypeGuard[LeanTransport]:
        """Whether `ticket` may go the lean way over `session` (`pipeline.ftp.burst`): a small, whole file into a
        folder the session has made, its first try that way, the size checked, nothing to resume, no manifest
        question to ask with it, and no live transfer for a backlog file to yield to."""
        job = ticket.job
        return (
            ticket.lean
            and hasattr(session, "lean_flow")  # (a `LeanTransport`; asked as cheaply as can be, once per job)
            and not job.into_folder
            and self.policy.verify_size
            and (job.priority == Priority.LIVE or not self.live_first.live_in_flight)
            and cast(LeanTransport, session).lean_ready(posixpath.dirname(job.remote_path), job.size)
            and not self.board.parts.is_ours(job)
            and (self.manifests is None or self.manifests.probe_for(job.remote_path) is None)
        )

    def lean_file(self, ticket: Ticket) -> BurstFile | None:
        """The lean run's view of `ticket` (its local file looked at now, as `_upload` does), or None when that
        attempt is over already (the file is gone or unreadable: reported)."""
        started = time.monotonic()
        try:
            version = file_state(ticket.job.local_path)
        except PermissionError as error:
            self._finish(ticket, Outcome.PARKED, started, attempt.unreadable(ticket.path, error))
            return None
        if version is None:
            self._finish(ticket, Outcome.GONE, started, attempt.GONE_REPLY)
            return None
        job = ticket.job
        if (version.size, version.mtime_ns) != (job.size, job.mtime_ns):
            job = ticket.job = replace(job, size=version.size, mtime_ns=version.mtime_ns)
        ticket.progress = DeliveryProgress()
        parts = self.board.parts
        return BurstFile(
            job.local_path,
            job.remote_path,
            job.size,
            lambda existing: parts.may_replace(job, existing),
            ticket.progress,
            (ticket, version, started),
            self.live_first if job.priority == Priority.LIVE else None,
        )

    def lean_delivered_many(self, files: list[tuple[BurstFile, Delivered]], *, recorded: bool) -> None:
        """The files a lean loop verified (`recorded`: their manifest lines are in the journal already,
        `Manifests.record_many`), in their order: each local file settled (deleted or kept) as `_delivered` does,
        one by one; then the delivered ones finished on the board together (one hold of it, one change of the
        counts) before their results go, in the same order. A file whose attempt ends otherwise (it changed; a
        bug) is reported in its place, after the ones before it."""
        settled: list[tuple[Ticket, Delivered, float, Removal]] = []
        for file, report in files:
            ticket, version, started = file.token
            try:
                removal = self._settle_local(ticket, version, report, recorded=recorded)
            except Exception as error:
                self._finish_delivered(settled)
                settled = []
                self.unexpected(ticket, error)
                continue
            if removal.changed:
                self._finish_delivered(settled)
                settled = []
                try:
                    self._report_delivered(ticket, report, started, removal)
                except Exception as error:
                    self.unexpected(ticket, error)
                continue
            settled.append((ticket, report, started, removal))
        self._finish_delivered(settled)

    def _delivered_safely(self, ticket: Ticket, version: FileState, report: Delivered, started: float) -> None:
        """`_delivered`, left for later: it must not raise into the delivery it runs beside."""
        try:
            self._delivered(ticket, version, report, started)
        except Exception as error:
            self.unexpected(ticket, error)

    def _delivered(
        self, ticket: Ticket, version: FileState, report: Delivered, started: float, *, recorded: bool = False
    ) -> None:
        """The server holds the file: settle the local copy (delete or keep) and report (`recorded`: its manifest
        line is written already)."""
        removal = self._settle_local(ticket, version, report, recorded=recorded)
        self._report_delivered(ticket, report, started, removal)

    def _settle_local(self, ticket: Ticket, version: FileState, report: Delivered, *, recorded: bool) -> Removal:
        """The delivered file's manifest line (unless `recorded`), then its local copy deleted or kept."""
        job = ticket.job
        if self.manifests is not None and report.sha256 is not None and not recorded:
            self.manifests.record(job.remote_path, report.sha256, job.size)  # before the local file may go
        if job.day_file:
            day_file_delivered(job)
        # Compared again under a read lease right before any removal (see `remove_uploaded`).
        return attempt.settle(job, version, delete_after_upload=self.policy.delete_after_upload)

    def _report_delivered(self, ticket: Ticket, report: Delivered, started: float, removal: Removal) -> None:
        """How a delivery ended once its local copy is settled: delivered, or changed (uploaded again)."""
        verified = _VERIFIED.get(report.verified_by or "", ())  # counted with the attempt's end (`_finish`)
        if removal.changed:
            self._changed(ticket, started, report.reply, sent=report.bytes_sent, counted=verified)
            return
        self._finish(
            ticket,
            Outcome.DELIVERED,
            started,
            _reply_of(report),
            sent=report.bytes_sent,
            removed=removal.removed,
            kept=removal.kept,
            counted=verified,
        )

    def _finish_delivered(self, settled: list[tuple[Ticket, Delivered, float, Removal]]) -> None:
        """`_finish` of several delivered attempts (`lean_delivered_many`): the board and the counts told of all
        of them in one go, then each result, in order (a count is never behind the result that changed it)."""
        if not settled:
            return
        counters = self.counters
        counted: tuple[str, ...] = ()
        if counters is not None:
            for _, report, _, _ in settled:
                counted += ("delivered", *_VERIFIED.get(report.verified_by or "", ()))
        together = counters is self.board.counters
        now = time.monotonic()
        attempted = [ticket.job for ticket, _, _, _ in settled]
        try:
            self.board.finish_many([ticket for ticket, _, _, _ in settled], counted if together else ())
        except Exception as error:  # a bug: each still in flight is reported so (its file is tried again)
            for ticket, _, _, _ in settled:
                self.unexpected(ticket, error)
            return
        if counters is not None and not together:
            for name in counted:
                counters.add(name)
        results_log, emit = self.results_log, self.emit
        for (ticket, report, started, removal), job in zip(settled, attempted, strict=True):
            result = UploadResult(
                job.local_path,
                job.remote_path,
                report.bytes_sent,
                now - started,
                ticket.attempts,
                Outcome.DELIVERED,
                _reply_of(report),
            )
            try:
                if not results_log.result(result, 0.0, removal.removed, removal.kept):  # True: sent with its line
                    emit(result)
            except Exception as error:
                self.unexpected(ticket, error)

    def _deliver(
        self, session: Transport, ticket: Ticket, take_ahead: Callable[[], bool], meanwhile: Callable[[], None]
    ) -> Delivered:
        """Hand the ticket's job to the transport: resuming only a `.part` of this very version (the board knows)."""
        job = ticket.job
        resume = self.board.parts.is_ours(job)
        ticket.progress = DeliveryProgress()  # what this attempt does on the server: the board reads it at the end
        if job.into_folder:  # the original API's queue_upload: a folder name puts the file inside it
            name = os.path.basename(job.local_path)
            remote = session.target_in_folder(job.remote_path, remote_name(name) or name)
            job = ticket.job = replace(job, remote_path=remote, into_folder=False)
        throttle = self.throttle_of.get(id(session))
        live = job.priority == Priority.LIVE
        if throttle is not None:
            throttle.backlog = not live
        if live:
            self.live_first.live_started()  # backlog transfers pause between blocks until it ends
        try:
            return self._send(session, ticket, job, resume, take_ahead, meanwhile)
        finally:
            if live:
                self.live_first.live_ended()

    def _send(
        self,
        session: Transport,
        ticket: Ticket,
        job: UploadJob,
        resume: bool,
        take_ahead: Callable[[], bool],
        meanwhile: Callable[[], None],
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
                meanwhile=meanwhile,
                probe=self.manifests.probe_for(job.remote_path) if self.manifests is not None else None,
            ),
            ticket.progress,
        )

    def _changed(
        self, ticket: Ticket, started: float, reply: str, sent: int = 0, counted: tuple[str, ...] = ()
    ) -> None:
        version = file_state(ticket.job.local_path)
        if version is None:
            self._finish(ticket, Outcome.GONE, started, attempt.GONE_REPLY, counted=counted)
            return
        newer = replace(ticket.job, size=version.size, mtime_ns=version.mtime_ns)
        self._finish(ticket, Outcome.CHANGED, started, reply, sent=sent, job=newer, counted=counted)

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
        counted: tuple[str, ...] = (),
    ) -> None:
        """Tell the board, the parent and the log how the attempt ended (`counted`: counts it adds one to besides
        `delivered` or `failed`; they change with the board's, in one go, before the result goes up)."""
        attempted = ticket.job
        seconds = time.monotonic() - started
        counters = self.counters
        if counters is None:
            counted = ()
        elif outcome == Outcome.DELIVERED:
            counted = ("delivered", *counted)
        elif outcome.failed:
            counted = ("failed", *counted)
        together = counters is self.board.counters
        delay = self.board.finish(ticket, outcome, job, counted if together else ())
        if counters is not None and not together:
            for name in counted:
                counters.add(name)
        result = UploadResult(
            attempted.local_path, attempted.remote_path, sent, seconds, ticket.attempts, outcome, reply
        )
        if not self.results_log.result(result, delay, removed or [], kept):  # True: sent up with its line
            self.emit(result)


def _reply_of(report: Delivered) -> str:
    """A delivered attempt's reply: the server's, and whether the size went unchecked."""
    return report.reply if report.verified is not None else f"{report.reply} (size not checked)"


class _Once:
    """Call `action` (if any) the first time this is called; later calls do nothing."""

    def __init__(self, action: Callable[[], None] | None) -> None:
        self._action = action

    def __call__(self) -> None:
        action, self._action = self._action, None
        if action is not None:
            action()
