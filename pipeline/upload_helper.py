"""UploadHelper (the original API's name): the sink, a separate process that uploads queued files.

Parent side: `queue_upload` / `submit` put jobs on the primary (live) or secondary (backfill)
queue; `stats()` reads live counts; `stop(deadline)` ends it. Child side (`run`): the `Sink`'s
worker threads, fed from both queues, each holding one persistent FTP(S) session.

The child is started from a `spawn` context (the parent runs watchdog threads; fork with threads
is unsafe) and receives only plain values: `FtpParams`, `UploadPolicy`, queues, a pipe and a
shared-memory array. How things come back:

- results: one `UploadResult` per attempt on the `results` queue, when one is given. Make it with
  `UploadHelper.new_queue()` (or any `spawn`-context queue) and keep reading it.
- counts: `stats()` returns a `SinkStats` from shared memory the child keeps current.
- signals: the child ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the
  parent decides) and treats a first SIGTERM (systemd stops every process of the unit) like
  `stop()` with the policy's deadline; once stopping, SIGTERM ends it at once (`terminate()`).
- logs: the child's records (loggers under "beemon.sink") travel on a log queue; the parent
  replays each one through its own logger of the same name, so they land in the parent's handlers
  and formats as if logged there. Pass `log_queue` to receive the raw records yourself instead.
  The password is never printed: `FtpParams` masks it in its repr, and the session masks it in
  what the login steps raise (where a server may echo it). It is not replaced wherever it occurs in
  the text: a password that is a common word would then show in every masked path.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
from logging.handlers import QueueHandler, QueueListener
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import Any

from operators.model import Priority, UploadJob
from pipeline import local_files
from pipeline.ftp_params import FtpParams, UploadPolicy
from pipeline.sink_model import Outcome, SinkCounters, SinkStats, UploadResult
from pipeline.sink_workers import ABORT_GRACE_SECONDS, Sink

__all__ = ["Outcome", "SinkStats", "UploadHelper", "UploadResult"]

SPAWN = multiprocessing.get_context("spawn")
log = logging.getLogger("beemon.sink")
#: Beyond the stop deadline: time to cut transfers, report, flush the queues and exit.
STOP_GRACE_SECONDS = ABORT_GRACE_SECONDS + 5.0
#: How long the child waits for its results and log records to reach the pipes before it exits.
FLUSH_SECONDS = 5.0


class UploadHelper(SpawnProcess):
    """The sink process. Construct and `start()` in the parent; `run()` is the child's main.

    `policy.connections` sessions upload in parallel; the primary queue is always served first.
    """

    def __init__(
        self,
        ftp: FtpParams,
        policy: UploadPolicy | None = None,
        results: Queue[Any] | None = None,
        *,
        log_queue: Queue[Any] | None = None,
        name: str = "beemon-sink",
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.ftp = ftp
        self.policy = policy or UploadPolicy()
        self.results = results
        self._primary: Queue[Any] = SPAWN.Queue()
        self._secondary: Queue[Any] = SPAWN.Queue()
        self._sent_secondary = 0  # parent side: jobs put on the secondary queue
        self._counters = SinkCounters(SPAWN)
        self._control_reader, self._control_writer = SPAWN.Pipe(duplex=False)
        self._own_log_queue = log_queue is None
        self._log_queue: Queue[Any] = log_queue if log_queue is not None else SPAWN.Queue()
        self._log_level = logging.WARNING
        self._listener: QueueListener | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @staticmethod
    def new_queue() -> Queue[Any]:
        """A results queue the child can share (from the `spawn` context)."""
        return SPAWN.Queue()

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else ("stopped" if self._stopped else "not running")
        return f"UploadHelper({self.ftp!r}, connections={self.policy.connections}, {state})"

    def __getstate__(self) -> dict[str, Any]:
        """What the child receives: everything but the parent's listener thread and lock."""
        state = dict(self.__dict__)
        state.update(_listener=None, _lock=None, _control_writer=None)
        return state

    # --- parent side

    def start(self) -> None:
        """Start the child (and, in the parent, the thread that replays its log records)."""
        self._log_level = log.getEffectiveLevel()
        if self._own_log_queue:
            self._listener = QueueListener(self._log_queue, _ReplayInParent())
            self._listener.start()
        super().start()
        self._control_reader.close()

    def queue_upload(self, source_filepath: str, dest_filepath: str, priority: int | None = 0) -> None:
        """The original API: queue `source_filepath` for `dest_filepath` (absolute, or under the remote root;
        a path ending in "/" is a folder and the file keeps its name).

        Priority 0 (or None) goes to the primary queue, anything else to the secondary. The file is
        stat'ed now; one that is missing is reported as "gone" by the sink.
        """
        if dest_filepath.endswith("/"):
            dest_filepath += os.path.basename(source_filepath)
        version = local_files.file_version(source_filepath) or (0, 0)
        queue = Priority.LIVE if not priority else Priority.BACKFILL
        self.submit(UploadJob(source_filepath, dest_filepath, version[0], version[1], queue))

    def submit(self, job: UploadJob) -> None:
        """Queue one job; a newer job for a path already queued replaces the older one."""
        if self._stopped:
            log.debug("not queued, the sink is stopped (the file stays in the outbox): %s", job.local_path)
            return
        if job.priority == Priority.LIVE:
            self._primary.put(job)
        else:
            self._secondary.put(job)
            self._sent_secondary += 1

    def backfill_queued(self) -> int:
        """Backfill jobs no worker has taken yet: ready on the sink's board, or still on their way to it."""
        stats = self._counters.snapshot()
        return stats.queued_secondary + max(0, self._sent_secondary - stats.received_secondary)

    def stats(self) -> SinkStats:
        """Queued (primary, secondary), waiting, parked, in flight, sessions, delivered, failed."""
        return self._counters.snapshot()

    @staticmethod
    def remove_local_file(filepath: str) -> list[str]:
        """The original API: remove an uploaded file (never a bare .csv; X.csv.final takes X.csv along)."""
        return local_files.remove_local_file(filepath)

    def stop(self, deadline: float | None = None) -> bool:
        """Finish transfers in flight within `deadline` s (default `policy.stop_deadline_seconds`), then exit.

        Blocks until the child has exited; returns True when it did so on its own. Queued files
        stay in the outbox. Safe to call twice, and before `start()`.
        """
        with self._lock:
            if self._stopped:
                return not self.is_alive()
            self._stopped = True
        deadline = self.policy.stop_deadline_seconds if deadline is None else max(0.0, deadline)
        started = self._popen is not None
        clean = True
        if started:
            with contextlib.suppress(OSError):
                self._control_writer.send(deadline)
            self.join(deadline + STOP_GRACE_SECONDS)
            if self.is_alive():
                clean = False
                log.warning("the sink did not exit within its stop deadline: ending it (its files stay in the outbox)")
                self.terminate()
                self.join(5)
        self._release_parent_side()
        return clean

    def _release_parent_side(self) -> None:
        for queue in (self._primary, self._secondary):
            queue.cancel_join_thread()  # unsent jobs are still files in the outbox
            queue.close()
        self._control_writer.close()
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

    def __enter__(self) -> UploadHelper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- child side

    def run(self) -> None:
        """The child's main: workers and feeders, then wait for the stop message or the parent's exit."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _log_to_queue(self._log_queue, self._log_level)
        emit = self.results.put if self.results is not None else (lambda result: None)
        sink = Sink(self.ftp, self.policy, emit, self._counters)
        sink.start()
        for queue, label, counters in (
            (self._primary, "primary", None),
            (self._secondary, "secondary", self._counters),
        ):
            feeder = threading.Thread(target=_feed, args=(queue, sink, counters), name=f"feed-{label}", daemon=True)
            feeder.start()
        log.debug("sink started (pid %d, %d session(s))", os.getpid(), self.policy.connections)
        try:
            signal.signal(signal.SIGTERM, _raise_terminated)
            deadline = self._wait_for_stop()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except _Terminated:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            log.info("SIGTERM: finishing transfers in flight, then stopping")
            deadline = self.policy.stop_deadline_seconds
        clean = sink.stop(deadline)
        log.debug("sink stopped (%s)", "clean" if clean else "transfers cut at the deadline")
        for queue in (self.results, self._log_queue):
            if queue is not None:
                _flush(queue)

    def _wait_for_stop(self) -> float:
        """Block until the parent sends the deadline, or exits without doing so (then the default)."""
        parent = multiprocessing.parent_process()
        waitables: list[Any] = [self._control_reader]
        if parent is not None:
            waitables.append(parent.sentinel)
        ready = multiprocessing.connection.wait(waitables)
        if self._control_reader in ready:
            with contextlib.suppress(EOFError, OSError):
                return float(self._control_reader.recv())
        log.warning("the parent process is gone: stopping")
        return self.policy.stop_deadline_seconds


class _Terminated(Exception):
    """SIGTERM arrived while the child waited for its stop message."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _feed(queue: Queue[Any], sink: Sink, counters: SinkCounters | None = None) -> None:
    """Move jobs from one inter-process queue onto the board until the queue closes.

    With `counters` (the secondary queue's feeder), each job taken off the queue is counted in
    `received_secondary`, after it is on the board: the parent never counts a job as neither.
    """
    while True:
        try:
            job = queue.get()
        except (EOFError, OSError, ValueError):
            return
        if job is None:
            return
        sink.put(job)
        if counters is not None:
            counters.add("received_secondary")


def _flush(queue: Queue[Any]) -> None:
    """Let the queue's feeder thread write what is buffered, but never hang the exit on a full pipe."""
    queue.close()
    joiner = threading.Thread(target=queue.join_thread, daemon=True)
    joiner.start()
    joiner.join(FLUSH_SECONDS)
    if joiner.is_alive():
        queue.cancel_join_thread()


def _log_to_queue(queue: Queue[Any], level: int) -> None:
    """In the child: every "beemon.sink" record goes to the log queue; nothing else does."""
    logger = logging.getLogger("beemon.sink")
    logger.handlers[:] = [QueueHandler(queue)]
    logger.setLevel(level)
    logger.propagate = False


class _ReplayInParent(logging.Handler):
    """In the parent: hand a record from the child to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
