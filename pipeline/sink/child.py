"""The sink process's plumbing: jobs in from the parent's pipes, reports out to the parent, SIGTERM.

The child's "beemon.sink" records travel up its reports pipe (`log_to_parent`); the parent replays
each through its own logger of the same name (`replay_in_parent`), so they land in its handlers and
formats. Results and counts travel the same pipe (`pipeline.sink.channels`).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from logging.handlers import QueueHandler
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from pipeline.sink.log_errors import ERROR_TEXT, exception_text
from pipeline.sink.model import SinkCounters
from pipeline.sink.pipes import PipeSender, read_all_batches_into

if TYPE_CHECKING:  # the parent imports this module for `ChildEnds`: the sink's own modules load in `run_sink`
    from pipeline.sink.workers import Sink

log = logging.getLogger("beemon.sink")
#: How long the child waits for its results and log records to reach the pipe before it exits.
FLUSH_SECONDS = 5.0


class Terminated(Exception):
    """SIGTERM arrived while the child waited for its stop message."""


class _SigTerm:
    """The sink's SIGTERM handler: noted while the sink starts, raised as `Terminated` in its wait for the stop."""

    def __init__(self) -> None:
        self.heard = False
        self._waiting = False

    def __call__(self, signum: int, frame: object) -> None:
        self.heard = True
        if self._waiting:
            raise Terminated

    def waiting(self) -> None:
        """From now on SIGTERM raises `Terminated`; raises it now if one came before."""
        self._waiting = True
        if self.heard:
            raise Terminated


def feed(connection: Connection, sink: Sink, counters: SinkCounters | None = None) -> None:
    """Move jobs from one of the parent's job pipes onto the board until the pipe closes.

    The jobs of one read of the pipe (whatever the parent wrote meanwhile, `read_all_batches_into`) go on the
    board together (`Sink.put_many`: one hold of it, one change of its counts). With `counters` (the
    secondary pipe's feeder), the jobs taken off the pipe are counted in `received_secondary`, after they
    are on the board: the parent never counts a job as neither.
    """

    def take(messages: list[Any]) -> bool:
        jobs, ended = messages, False
        for at, message in enumerate(messages):  # (by identity: `None in` would call each job's `__eq__`)
            if message is None:  # the parent's end of the pipe: no more jobs
                jobs, ended = messages[:at], True
                break
        if jobs:
            sink.put_many(jobs)
            if counters is not None:
                counters.add("received_secondary", len(jobs))
        return not ended

    read_all_batches_into(connection, take)


#: formats a traceback as logging does, for `LogsToParent`
_TRACEBACKS = logging.Formatter()


class LogsToParent(QueueHandler):
    """Each record, prepared as for a queue (message formatted, no traceback object), goes up the reports pipe."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """The message formatted in place: the record is this handler's alone (the logger does not propagate),
        so `QueueHandler`'s copy of it, and its formatter's pass, would be one more of each per line. A traceback
        goes up as text of its own (`exc_text`), not in the message: the parent's formatter shows it below the
        message, as it does its own (`QueueHandler.prepare` would make it part of the message's one line)."""
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = _TRACEBACKS.formatException(record.exc_info)
            setattr(record, ERROR_TEXT, exception_text(record.exc_info))  # (the JSON form's `error`)
        record.exc_info = None  # (a traceback object cannot be pickled)
        record.msg = record.message = record.getMessage()
        record.args = None
        return record

    def enqueue(self, record: logging.LogRecord) -> None:
        self.queue.put(("log", record))


def log_to_parent(reports: PipeSender, level: int) -> None:
    """In the child: every "beemon.sink" record goes to the parent; nothing else does."""
    # The parent's formats name none of a record's caller, thread or process (its own fields say which
    # process): logging's documented switches spare each record a stack walk and three lookups.
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logger = logging.getLogger("beemon.sink")
    logger.handlers[:] = [LogsToParent(reports)]  # type: ignore[arg-type]
    logger.setLevel(level)
    logger.propagate = False


#: The parent's loggers that replay the child's records, by name (a logger, once made, is logging's for good).
_PARENT_LOGGERS: dict[str, logging.Logger] = {}


def replay_in_parent(record: logging.LogRecord) -> None:
    """In the parent: hand a record from the child to the parent's logger of the same name.

    A function, not a `logging.Handler` made per record: a handler's construction takes logging's
    module lock and registers a weak reference, for every record of every file. (The loggers are
    kept by name for the same reason: `logging.getLogger` takes that lock too.)
    """
    logger = _PARENT_LOGGERS.get(record.name)
    if logger is None:
        logger = _PARENT_LOGGERS[record.name] = logging.getLogger(record.name)
    if logger.isEnabledFor(record.levelno):
        logger.handle(record)


#: The parent's request on the control pipe for `run --once`'s last round of manifests (with the attempts).
FINISH_MANIFESTS = "finish-manifests"


def wait_for_stop(
    control: Any, default_deadline: float, on_finish_manifests: Callable[[int], None] = lambda attempts: None
) -> float:
    """Block until the parent sends the stop deadline on `control`, or exits without doing so (then the default).

    A request for the last round of manifests (`FINISH_MANIFESTS`, attempts) meanwhile goes to `on_finish_manifests`.
    """
    parent = multiprocessing.parent_process()
    waitables: list[Any] = [control]
    if parent is not None:
        waitables.append(parent.sentinel)
    while control in multiprocessing.connection.wait(waitables):
        try:
            message = control.recv()
        except (EOFError, OSError):
            break
        if isinstance(message, tuple) and message[0] == FINISH_MANIFESTS:
            on_finish_manifests(int(message[1]))
            continue
        return float(message)
    log.warning("the parent process is gone: stopping")
    return default_deadline


@dataclass(frozen=True)
class ChildEnds:
    """The child's ends of what `UploadHelper` shares with it: the job pipes, the control pipe, the reports
    pipe (results: whether the parent wants them), the counters the reports carry, the heartbeat, the
    `.part` journal's path (None: none kept) and the folder of the per-day manifest journals (None: none)."""

    primary: Connection
    secondary: Connection
    control: Any
    reports: PipeSender
    results: bool
    log_level: int
    counters: SinkCounters
    heartbeat: Any
    journal: str | None
    manifests: str | None = None


def run_sink(ftp: Any, policy: Any, ends: ChildEnds) -> None:
    """The sink process's main, for `UploadHelper.run`: workers and feeders, then wait for the stop
    message or the parent's exit, stop within the deadline, keep the cut transfers' records, flush."""
    from pipeline.outbox.file_state import ignore_lease_breaks

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a reload is the parent's: it rebuilds the sink
    ignore_lease_breaks()  # a writer opening a file while its delete holds the lease: no signal to the sink
    # SIGTERM from here on finishes the transfers in flight: heard while starting (the first upload may be
    # under way before the wait begins), it is kept for the wait, which it ends at once.
    sigterm = _SigTerm()
    signal.signal(signal.SIGTERM, sigterm)
    from pipeline.sink.manifest import Manifests
    from pipeline.sink.part_records import load_journal, save_journal
    from pipeline.sink.workers import Sink

    log_to_parent(ends.reports, ends.log_level)
    sink = Sink(ftp, policy, _emitter(ends), ends.counters)
    # The usual delivery's line is written by the parent from the result (`pipeline.sink.delivered_line`).
    sink.step.results_log.line_to_parent = lambda result: ends.reports.put(("delivered", (result, time.time())))
    if ends.manifests is not None:
        sink.manifests = Manifests(ends.manifests, policy.manifest_interval_seconds)
        sink.manifests.restore()
    journal = ends.journal
    if journal is not None:
        sink.board.parts.restore(load_journal(journal))
    sink.start()
    beating = threading.Event()
    ends.heartbeat.start(sink.board.counts, beating)
    for pipe, label, counters in (
        (ends.primary, "primary", None),
        (ends.secondary, "secondary", ends.counters),
    ):
        feeder = threading.Thread(target=feed, args=(pipe, sink, counters), name=f"feed-{label}", daemon=True)
        feeder.start()
    log.debug("sink started (pid %d, %d session(s))", os.getpid(), policy.connections)
    try:
        sigterm.waiting()
        deadline = wait_for_stop(
            ends.control,
            policy.stop_deadline_seconds,
            lambda attempts: sink.finish_manifests(attempts, lambda left: ends.reports.put(("manifests", left))),
        )
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except Terminated:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        log.info("SIGTERM: finishing transfers in flight, then stopping")
        deadline = policy.stop_deadline_seconds
    clean = sink.stop(deadline)
    beating.set()
    if journal is not None:  # only transfers cut short: a parked, complete .part is retried by its own rule
        save_journal(journal, [record for record in sink.board.parts.snapshot() if not record[4]])
    log.debug("sink stopped (%s)", "clean" if clean else "transfers cut at the deadline")
    ends.reports.put(("end", None))
    ends.reports.close(FLUSH_SECONDS)


def _emitter(ends: ChildEnds) -> Any:
    """How a worker reports a result (or `SinkGaveUp`): up the reports pipe, when the parent wants results."""
    if not ends.results:
        return lambda result: None
    return lambda result: ends.reports.put(("result", result))
