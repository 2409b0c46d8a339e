"""Sink: the inside of the sink process, a pool of worker threads each owning one persistent session.

A worker connects first (admitted by the `SessionPool`, backing off with full jitter after any
failure) and only then takes a job, so jobs never wait on a dead connection. Each attempt ends in
exactly one `UploadResult`; the `JobBoard` decides what happens to the job next. A local file is
deleted only after the server's copy was verified (or, on servers that cannot tell sizes, after
the 226 reply) and only if it is still the version (size, mtime, inode, ctime) it was when the
attempt began and no process has it open for writing (`local_files.remove_uploaded`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from operators.model import UploadJob
from pipeline.backoff import Backoff
from pipeline.bandwidth import TokenBucket
from pipeline.file_state import file_state
from pipeline.ftp_errors import (
    FtpFailure,
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TooManyConnections,
    TransientFailure,
)
from pipeline.ftp_params import FtpParams, UploadPolicy
from pipeline.ftp_session import UploadProgress, UploadSession
from pipeline.local_files import Removal, remove_uploaded
from pipeline.sink_board import Entry, JobBoard
from pipeline.sink_model import Outcome, SinkCounters, UploadResult
from pipeline.sink_pool import SessionPool

log = logging.getLogger("beemon.sink")
#: After the stop deadline cut the transfers, how long workers get to report and close.
ABORT_GRACE_SECONDS = 5.0


def unsafe_settings(policy: UploadPolicy) -> list[str]:
    """What the policy gives up of the checks that keep a cut upload from costing a file, one phrase each."""
    risks = []
    if not policy.verify_size:
        risks.append(
            "upload.verify_size = false: the server's copy is never checked, a local file is deleted on the"
            " server's 226 reply alone (a copy cut short on the server would be all that is left)"
            if policy.delete_after_upload
            else "upload.verify_size = false: the server's copy is never checked against the local size"
        )
    if not policy.atomic_rename:
        risks.append(
            "upload.atomic_rename = false: files are stored under their final names, so an interrupted upload"
            " leaves a cut file visible under its final name until it is sent again"
        )
    return risks


def out_of_space(reply: str) -> bool:
    """Whether a refusal says the server's disk (or the account's quota) is full: 452 and 552, or a 451 saying so."""
    text = reply.split(": ", 1)[-1] if reply[:3].isalpha() else reply
    code = text.strip()[:3]
    return code in ("452", "552") or (
        code == "451" and any(word in text.lower() for word in ("space", "quota", "full"))
    )


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


class Sink:
    """Workers, their sessions, the board and the pool; `put` jobs in, `stop` to end."""

    def __init__(
        self,
        params: FtpParams,
        policy: UploadPolicy,
        emit: Callable[[UploadResult], None] = lambda result: None,
        counters: SinkCounters | None = None,
    ) -> None:
        self.params = params
        self.policy = policy
        self._emit = emit
        self._counters = counters
        self.board = JobBoard(policy.retry_base, policy.retry_max, counters)
        self.pool = SessionPool(policy.connections, regrow_seconds=policy.retry_max)
        self.stopping = threading.Event()
        self.aborting = threading.Event()
        rate = policy.bandwidth_bytes_per_second
        throttle = TokenBucket(rate) if rate > 0 else None
        self.sessions = [
            UploadSession(params, throttle=throttle, use_sendfile=policy.use_sendfile, aborted=self.aborting)
            for _ in range(policy.connections)
        ]
        self._threads: list[threading.Thread] = []
        self._outage = _Outage()
        self._parked_replies: dict[str, str] = {}
        self._lock = threading.Lock()
        self._open_sessions = 0
        self._out_of_space = False  # in an episode of "disk full" replies: warned once, until a file goes through

    def start(self) -> None:
        risks = unsafe_settings(self.policy)
        if risks:
            log.warning("unsafe upload settings: %s", "; ".join(risks))
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

    def _work(self, session: UploadSession) -> None:
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
                self.stopping.wait(self.policy.retry_base)

    def _serve(self, session: UploadSession) -> None:
        backoff = Backoff(self.policy.retry_base, self.policy.retry_max)
        admitted = False
        ahead: Entry | None = None  # the next job, taken during the last upload's rename
        try:
            while not self.stopping.is_set():
                if not admitted:
                    if ahead is not None:  # not held through a reconnect: another worker may take it now
                        self.board.untake(ahead)
                        ahead = None
                    admitted = self._open(session, backoff)
                    continue
                entry, ahead = ahead or self.board.take(timeout=0), None
                if entry is None:
                    session.drop_passive()
                    entry = self.board.take(timeout=self.policy.idle_noop_seconds)
                if entry is not None:
                    ahead = self._attempt(session, entry)
                elif not self.stopping.is_set():
                    try:
                        session.noop()
                    except FtpFailure as failure:
                        log.debug("idle session lost (%s): reconnecting", failure)
                if not session.connected:
                    admitted = False
                    self._session_closed()
        finally:
            if ahead is not None:
                self.board.untake(ahead)
            session.close()
            if admitted:
                self._session_closed()

    def _open(self, session: UploadSession, backoff: Backoff) -> bool:
        """Connect once (if the pool admits it); on failure wait the backoff. True when connected."""
        if not self.pool.admit():
            return False
        try:
            session.connect()
        except SessionFailure as failure:
            # Refused credentials or certificate: this worker probes again after retry_max, keeping
            # its slot meanwhile, and the held-back pool lets no other worker try in between.
            self.pool.hold_back()
            self._connect_failed(failure, backoff, None)
            self.pool.release()
            return False
        except FtpFailure as failure:
            # Shrink while this worker still counts as active: the limit is "the others that got in".
            limit = self.pool.too_many() if isinstance(failure, TooManyConnections) else None
            self.pool.release()
            self._connect_failed(failure, backoff, limit)
            return False
        backoff.reset()
        self.pool.logged_in()
        with self._lock:
            self._open_sessions += 1
            self._publish_sessions()
        down_for = self._outage.recovered()
        if down_for is not None:
            log.info("connected to %s:%d again after %.1f s", self.params.host, self.params.port, down_for)
        return True

    def _session_closed(self) -> None:
        self.pool.release()
        with self._lock:
            self._open_sessions -= 1
            self._publish_sessions()

    def _publish_sessions(self) -> None:
        if self._counters is not None:
            self._counters.set(sessions=self._open_sessions)

    def _connect_failed(self, failure: FtpFailure, backoff: Backoff, limit: int | None) -> None:
        """Log the failure (once per outage, or per 421) and wait out this worker's backoff.

        A refused login waits the cap at once: it will not fix itself sooner.
        """
        delay = backoff.next_delay()
        if isinstance(failure, SessionFailure):
            delay = self.policy.retry_max
        first = self._outage.failed()
        where = f"{self.params.host}:{self.params.port}"
        if limit is not None:
            log.warning(
                "%s answered 421 (too many connections): using at most %d session(s), trying more again in %.0f s",
                where,
                limit,
                self.pool.regrow_seconds,
                extra={"reply": failure.reply},
            )
        elif first and isinstance(failure, SessionFailure):
            log.error(
                "cannot log in to %s: %s (check ftp.username, the password, ftp.tls, ftp.ca_file); retrying",
                where,
                failure,
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

    # --- one attempt

    def _attempt(self, session: UploadSession, entry: Entry) -> Entry | None:
        """Upload one job; returns the next job if one was taken during the rename (its data port is open)."""
        ahead: list[Entry] = []

        def take_ahead() -> bool:
            """Take the next ready job now, so the rename's flight can ask for its data port."""
            if self.stopping.is_set():
                return False
            following = self.board.take(timeout=0)
            if following is not None:
                ahead.append(following)
            return following is not None

        try:
            self._upload(session, entry, take_ahead)
        except Exception as error:  # a bug: the file stays, is tried again, and the worker goes on
            log.error("unexpected error while uploading %s (%s: %s)", entry.path, type(error).__name__, error)
            log.debug("unexpected error while uploading %s", entry.path, exc_info=True)
            session.close()
            if self.board.in_flight(entry):
                self._finish(entry, Outcome.RETRY, time.monotonic(), f"{type(error).__name__}: {error}")
        return ahead[0] if ahead else None

    def _upload(self, session: UploadSession, entry: Entry, take_ahead: Callable[[], bool]) -> None:
        started = time.monotonic()
        try:
            version = file_state(entry.job.local_path)
        except PermissionError as error:  # a folder on the way is unreadable (mode 000)
            self._unreadable(entry, started, error)
            return
        if version is None:
            self._finish(entry, Outcome.GONE, started, "the local file is gone")
            return
        if (version.size, version.mtime_ns) != (entry.job.size, entry.job.mtime_ns):
            entry.job = replace(entry.job, size=version.size, mtime_ns=version.mtime_ns)
        job = entry.job
        policy = self.policy
        resume = self.board.part_is_ours(job)
        entry.progress = UploadProgress()  # what this attempt does on the server: the board reads it at the end
        try:
            report = session.upload(
                job.local_path,
                job.remote_path,
                job.size,
                resume=resume,
                part_complete=resume and self.board.part_is_complete(job),
                atomic_rename=policy.atomic_rename,
                verify_size=policy.verify_size,
                progress=entry.progress,
                next_upload=take_ahead,
                may_replace=lambda existing: self.board.may_replace(job, existing),
            )
        except LocalFileGone:
            self._finish(entry, Outcome.GONE, started, "the local file is gone")
        except LocalFileChanged as error:
            self._changed(entry, started, str(error))
        except PermanentFailure as failure:
            self._finish(entry, Outcome.PARKED, started, str(failure))
        except SessionFailure as failure:
            session.close()
            self._finish(entry, Outcome.RETRY, started, str(failure))
        except TransientFailure as failure:
            self._finish(entry, Outcome.RETRY, started, str(failure))
        except PermissionError as error:
            self._unreadable(entry, started, error)
        except OSError as error:  # reading the local file failed
            self._finish(entry, Outcome.RETRY, started, f"local read failed: {error}")
        else:
            # Compared again under a read lease right before the removal (see `remove_uploaded`).
            if policy.delete_after_upload:
                removal = remove_uploaded(job.local_path, version)
            else:
                now = file_state(job.local_path)
                removal = Removal(changed=now is not None and now != version)
            if removal.changed:
                self._changed(entry, started, report.reply, sent=report.bytes_sent)
                return
            reply = report.reply if report.verified is not None else f"{report.reply} (size not checked)"
            self._finish(
                entry,
                Outcome.DELIVERED,
                started,
                reply,
                sent=report.bytes_sent,
                removed=removal.removed,
                kept=removal.kept,
            )

    def _unreadable(self, entry: Entry, started: float, error: OSError) -> None:
        """The station's file (or a folder on its way) cannot be read: park it, it is tried when it changes."""
        self._finish(entry, Outcome.PARKED, started, f"cannot read {entry.path}: {error.strerror or error}")

    def _space_episode(self, full: bool) -> bool:
        """Record whether the server is out of space now; True when that starts or ends an episode."""
        with self._lock:
            changed, self._out_of_space = self._out_of_space != full, full
            return changed

    def _changed(self, entry: Entry, started: float, reply: str, sent: int = 0) -> None:
        version = file_state(entry.job.local_path)
        if version is None:
            self._finish(entry, Outcome.GONE, started, "the local file is gone")
            return
        newer = replace(entry.job, size=version.size, mtime_ns=version.mtime_ns)
        self._finish(entry, Outcome.CHANGED, started, reply, sent=sent, job=newer)

    def _finish(
        self,
        entry: Entry,
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
        attempted = entry.job
        seconds = time.monotonic() - started
        delay = self.board.finish(entry, outcome, job)
        result = UploadResult(
            attempted.local_path, attempted.remote_path, sent, seconds, entry.attempts, outcome.value, reply
        )
        if self._counters is not None:
            self._counters.add("delivered" if outcome == Outcome.DELIVERED else "failed", 1)
        self._emit(result)
        self._log(result, delay, removed or [], kept)

    def _log(self, result: UploadResult, delay: float, removed: list[str], kept: str = "") -> None:
        extra = {
            "file": result.local_path,
            "remote": result.remote_path,
            "size": result.bytes,
            "seconds": round(result.seconds, 3),
            "attempt": result.attempt,
            "outcome": result.outcome,
            "reply": result.reply,
        }
        path = result.local_path
        if result.outcome == Outcome.DELIVERED:
            self._parked_replies.pop(path, None)
            if self._space_episode(False):
                log.info("the server takes files again (it had no space left)")
            log.info(
                "delivered %s -> %s (%d B, %.2f s)", path, result.remote_path, result.bytes, result.seconds, extra=extra
            )
            if removed:
                log.info("removed %s from the outbox (verified on the server)", ", ".join(removed), extra=extra)
            if kept:
                log.info("kept %s in the outbox: %s", path, kept, extra=extra)
        elif result.outcome == Outcome.PARKED:
            if self._parked_replies.get(path) != result.reply and result.reply.startswith("cannot read "):
                self._parked_replies[path] = result.reply
                log.warning(
                    "%s: parked, it stays in the outbox and is tried again when it changes (and every %.0f s)",
                    result.reply,
                    delay,
                    extra=extra,
                )
            elif self._parked_replies.get(path) != result.reply and result.reply.startswith("refusing to overwrite"):
                self._parked_replies[path] = result.reply
                log.warning(
                    "%s: parked, the local file stays in the outbox (two outbox files map to this remote name,"
                    " or the server's file came from elsewhere); retrying every %.0f s",
                    result.reply,
                    delay,
                    extra=extra,
                )
            elif self._parked_replies.get(path) != result.reply:
                self._parked_replies[path] = result.reply
                hint = (
                    "; if this server never allows renames, set upload.atomic_rename = false"
                    if "rename refused" in result.reply
                    else ""
                )
                log.warning(
                    "parked %s -> %s: the server answered %r; retrying every %.0f s%s",
                    path,
                    result.remote_path,
                    result.reply,
                    delay,
                    hint,
                    extra=extra,
                )
            else:
                log.debug("still refused: %s: %s", path, result.reply, extra=extra)
        elif result.outcome == Outcome.RETRY and out_of_space(result.reply) and self._space_episode(True):
            log.warning(
                "the server has no space left: %s; files stay in the outbox and are retried with backoff",
                result.reply,
                extra=extra,
            )
        elif result.outcome == Outcome.RETRY:
            log.info("retrying %s in %.1f s (attempt %d): %s", path, delay, result.attempt, result.reply, extra=extra)
        elif result.outcome == Outcome.CHANGED:
            log.info("%s changed while it was uploaded: kept, uploading it again", path, extra=extra)
        else:
            log.info("%s is gone from the outbox: nothing to upload", path, extra=extra)
