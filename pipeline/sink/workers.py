"""Sink: the inside of the sink process, a pool of worker threads each owning one persistent session.

Sessions open on demand and close when idle, so that stations sharing a server leave it the slots
they do not use: one worker connects at start and stays connected (warm, NOOPing when idle) for
the next file; another connects only when a job is ready that no idle session is waiting for, and
closes its session once idle for `idle_close_seconds`, unless it is the last one open. A worker
connects (admitted by the `SessionPool`, backing off with full jitter after any failure, a 421
included, so contending stations take turns) before its job's upload starts, and gives the job
back when the connection fails, so jobs never wait on a dead connection. Each attempt ends in
exactly one `UploadResult`; the `JobBoard` decides what happens to the job next. A local file is
deleted only after the server's copy was verified (or, on servers that cannot tell sizes, after
the 226 reply) and only if it is still the version (size, mtime, inode, ctime) it was when the
attempt began and no process has it open for writing (`local_files.remove_uploaded`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from operators.model import UploadJob
from operators.remote_path import remote_name
from pipeline.ftp.params import FtpParams, UploadPolicy
from pipeline.outbox.deletion import Removal, final_beside, remove_uploaded
from pipeline.outbox.file_state import file_state
from pipeline.s3.params import S3Params
from pipeline.sftp.params import SftpParams
from pipeline.sink.board import Entry, JobBoard
from pipeline.sink.model import Outcome, SinkCounters, SinkGaveUp, UploadResult
from pipeline.sink.pool import SessionPool
from pipeline.sink.retry import Backoff
from pipeline.transport import Delivery, DeliveryProgress, Transport, make_transport
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.errors import (
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TooManyConnections,
    TransientFailure,
    TransportFailure,
    scrub,
)

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
        params: FtpParams | SftpParams | S3Params,
        policy: UploadPolicy,
        emit: Callable[[UploadResult | SinkGaveUp], None] = lambda result: None,
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
            make_transport(params, throttle=throttle, use_sendfile=policy.use_sendfile, aborted=self.aborting)
            for _ in range(policy.connections)
        ]
        self._threads: list[threading.Thread] = []
        self._outage = _Outage()
        self._parked_replies: dict[str, str] = {}
        self._lock = threading.Lock()
        self._open_sessions = 0
        self._connecting = 0  # workers between `admit` and the end of their login
        # With `policy.connect_attempts` (run --once): failed connects in a row, on one shared schedule.
        self._failed_connects = 0
        self._probe_backoff = Backoff(policy.retry_base, policy.retry_max)
        self.gave_up = threading.Event()
        self._out_of_space = False  # in an episode of "disk full" replies: warned once, until a file goes through

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
                self.stopping.wait(self.policy.retry_base)

    def _serve(self, session: Transport) -> None:
        backoff = Backoff(self.policy.retry_base, self.policy.retry_max)
        admitted = False
        ahead: Entry | None = None  # the next job: taken during the last upload's rename, or before connecting
        idle_since = time.monotonic()
        try:
            while not self.stopping.is_set():
                if not admitted:
                    if ahead is not None:  # not held through a reconnect: another worker may take it now
                        self.board.untake(ahead)
                        ahead = None
                    admitted, ahead = self._grow(session, backoff)
                    idle_since = time.monotonic()
                    continue
                entry, ahead = ahead or self.board.take(timeout=0), None
                if entry is None:
                    session.idle()
                    entry = self.board.take(timeout=self._idle_wait(idle_since))
                if entry is not None:
                    ahead = self._attempt(session, entry)
                    idle_since = time.monotonic()
                elif self.stopping.is_set():
                    break
                elif time.monotonic() - idle_since >= self.policy.idle_close_seconds and self._retire():
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
                    self._session_closed()
        finally:
            if ahead is not None:
                self.board.untake(ahead)
            session.close()
            if admitted:
                self._session_closed()

    def _idle_wait(self, idle_since: float) -> float:
        """How long an idle worker waits for a job before its next NOOP, or before its session may close."""
        until_close = idle_since + self.policy.idle_close_seconds - time.monotonic()
        if until_close <= 0:  # this one stays warm: the last open session
            return self.policy.idle_noop_seconds
        return min(self.policy.idle_noop_seconds, until_close)

    def _retire(self) -> bool:
        """Whether this idle session may close: not when it is the last one open (that one stays warm)."""
        with self._lock:
            if self._open_sessions <= 1:
                return False
            self._open_sessions -= 1
            self._publish_sessions()
            return True

    def _grow(self, session: Transport, backoff: Backoff) -> tuple[bool, Entry | None]:
        """A worker without a session: connect when none is open (the warm one) or when a job needs it.

        Returns (connected, the job to upload first).
        """
        with self._lock:
            warm = self._open_sessions + self._connecting == 0
            if warm:
                self._connecting += 1
        entry = None
        if warm:
            admitted = self.pool.admit()
        else:
            entry = self.board.take(timeout=self.policy.idle_noop_seconds, cold=True)
            if entry is None:
                return False, None
            admitted = self.pool.try_admit()
            if not admitted:  # the pool is at its limit (after a 421): the open sessions will take it
                self.board.untake(entry)
                self.pool.wait_for_room(self.policy.idle_noop_seconds)
                return False, None
            with self._lock:
                self._connecting += 1
        try:
            connected = admitted and self._open(session, backoff, entry)
        finally:
            with self._lock:
                self._connecting -= 1
        return connected, entry if connected else None

    def _open(self, session: Transport, backoff: Backoff, entry: Entry | None = None) -> bool:
        """Connect once (the pool admitted it); on failure give `entry` back, wait the backoff; True when connected."""
        try:
            session.connect()
        except SessionFailure as failure:
            if entry is not None:
                self.board.untake(entry)
            # Refused credentials or certificate: this worker probes again after retry_max, keeping
            # its slot meanwhile, and the held-back pool lets no other worker try in between.
            self.pool.hold_back()
            if self.policy.connect_attempts:
                self._give_up(self._login_refused(failure))
            else:
                self._connect_failed(failure, backoff, None)
            self.pool.release()
            return False
        except TransportFailure as failure:
            if entry is not None:
                self.board.untake(entry)
            if self.policy.connect_attempts and not isinstance(failure, TooManyConnections):
                self._probe_failed(failure)  # waits holding the slot: one prober at a time
                self.pool.release()
                return False
            if self.policy.connect_attempts and self._count_failed_connect() >= self.policy.connect_attempts:
                self.pool.release()
                self._give_up(self._unreachable(failure))
                return False
            delay = backoff.next_delay()
            # Shrink while this worker still counts as active: the limit is "the others that got in".
            limit = self.pool.too_many(pause=delay) if isinstance(failure, TooManyConnections) else None
            self.pool.release()
            self._connect_failed(failure, backoff, limit, delay)
            return False
        backoff.reset()
        with self._lock:
            self._failed_connects = 0
            self._probe_backoff.reset()
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

    def _connect_failed(
        self, failure: TransportFailure, backoff: Backoff, limit: int | None, delay: float | None = None
    ) -> None:
        """Log the failure (once per outage, or per episode of 421s) and wait out this worker's backoff.

        A refused login waits the cap at once: it will not fix itself sooner.
        """
        delay = backoff.next_delay() if delay is None else delay
        if isinstance(failure, SessionFailure):
            delay = self.policy.retry_max
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
                getattr(self.params, "login_check", None) or "check ftp.username, the password, ftp.tls, ftp.ca_file",
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
        if "certificate" in str(failure).lower():
            check = "check ftp.ca_file and ftp.verify"
        else:
            check = getattr(self.params, "login_check", None) or (  # SFTP and S3 name their own settings
                f"check ftp.username ({self.params.username!r}) and the password"
                " (BEEMON_FTP__PASSWORD or .secrets.toml), and ftp.tls"
            )
        # Masked where printed: the server's words may echo what it was sent, the rest is ours.
        return f"cannot log in to {where}: {scrub(str(failure), self.params.password)}; {check}"

    def _count_failed_connect(self) -> int:
        with self._lock:
            self._failed_connects += 1
            return self._failed_connects

    def _unreachable(self, failure: TransportFailure) -> str:
        where = f"{self.params.host}:{self.params.port}"
        last = scrub(str(failure), self.params.password)
        return (
            f"cannot reach {where} ({self._failed_connects} connection attempt(s) failed, the last: {last});"
            f" {getattr(self.params, 'reach_check', None) or 'check ftp.host, ftp.port and the network'}"
        )

    def _probe_failed(self, failure: TransportFailure) -> None:
        """A connect failed with `connect_attempts` set: give up after that many in a row, else wait the backoff."""
        failures = self._count_failed_connect()
        if failures >= self.policy.connect_attempts:
            self._give_up(self._unreachable(failure))
            return
        with self._lock:
            delay = self._probe_backoff.next_delay()
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

    def _attempt(self, session: Transport, entry: Entry) -> Entry | None:
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

    def _upload(self, session: Transport, entry: Entry, take_ahead: Callable[[], bool]) -> None:
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
        entry.progress = DeliveryProgress()  # what this attempt does on the server: the board reads it at the end
        try:
            if job.into_folder:  # the original API's queue_upload: a folder name puts the file inside it
                name = os.path.basename(job.local_path)
                remote = session.target_in_folder(job.remote_path, remote_name(name) or name)
                job = entry.job = replace(job, remote_path=remote, into_folder=False)
            report = session.deliver(
                Delivery(
                    job.local_path,
                    job.remote_path,
                    job.size,
                    resume=resume,
                    part_complete=resume and self.board.part_is_complete(job),
                    atomic_rename=policy.atomic_rename,
                    verify_size=policy.verify_size,
                    next_upload=take_ahead,
                    may_replace=lambda existing: self.board.may_replace(job, existing),
                ),
                entry.progress,
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
            if job.day_file:
                self._log_day_file(job)
            if policy.delete_after_upload:
                removal = remove_uploaded(job.local_path, version, day_file=job.day_file)
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

    def _log_day_file(self, job: UploadJob) -> None:
        """Say why a bare `.csv` went up as its day's file: its `.final` is shorter, or never came."""
        final = final_beside(job.local_path)
        final_size = file_state(final) if final is not None else None
        if final is not None and final_size is not None:
            log.warning(
                "delivered %s (%d B) as its day's file %s: %s is shorter (%d B)",
                job.local_path,
                job.size,
                job.remote_path,
                final.rsplit("/", 1)[-1],
                final_size.size,
            )
        else:
            log.warning(
                "delivered %s (%d B) as its day's file %s without its .final: the day is over and the file"
                " was left quiet; a .final that comes later replaces it on the server",
                job.local_path,
                job.size,
                job.remote_path,
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
