"""What the parent shares with the sink process: two job pipes, the control pipe, the reports pipe, the heartbeat.

`UploadHelper` (pipeline.sink.process) holds one `Channels`. It travels to the child when the
process starts (spawn pickles it) with the child's ends only; the child reads them as its
`ChildEnds`. Down: the parent writes live jobs to the primary pipe and backfill to the secondary
(each through a direct, spaced `PipeSender`: written by the caller after a quiet spell when the pipe
takes it at once, else by the sender's thread with the rest of its burst, so a caller never blocks on a
full pipe), and the stop deadline to the control
pipe (before it, `run --once` may ask there for its last round of manifests). Up:
the child sends everything else on one reports pipe, in order: that it reached `run`, each result,
its counts after each change, its log records, the manifests the last round left, and "end" last.
One thread here reads them: results go on the caller's `results` queue (one with a `put_removed` method
gets through it those whose file the sink removed from the outbox), records through the
parent's loggers (or onto the caller's `log_queue`), counts into the snapshot `stats()` returns.
A result sent as "delivered" comes without its record: its line is made here
(`pipeline.sink.delivered_line`).

Only pipes and an anonymous shared mapping (the heartbeat): no named semaphore, so no resource
tracker process (see `pipeline.sink.launch`, which spawns the child without one).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
from typing import Any

from operators.model import Priority, UploadJob
from pipeline.sink import delivered_line
from pipeline.sink.child import FINISH_MANIFESTS, ChildEnds, replay_in_parent
from pipeline.sink.heartbeat import Heartbeat
from pipeline.sink.model import SinkCounters, SinkStats
from pipeline.sink.pipes import SPACING_SECONDS, PipeSender, read_all_into

#: The start method of the processes: the parent runs watchdog threads, and fork with threads is unsafe.
SPAWN = multiprocessing.get_context("spawn")
log = logging.getLogger("beemon.sink")
#: The ends the child receives (everything else stays in the parent).
CHILD_ENDS = ("primary_reader", "secondary_reader", "control_reader", "reports_writer", "heartbeat", "log_level")
#: How long `release` waits for the child's last reports once it exited.
DRAIN_SECONDS = 5.0


class Channels:
    """The pipes and heartbeat between the parent and the child; `results` and `log_queue` are the caller's."""

    def __init__(self, results: Any = None, log_queue: Any = None) -> None:
        self.primary_reader, primary_writer = SPAWN.Pipe(duplex=False)
        self.secondary_reader, secondary_writer = SPAWN.Pipe(duplex=False)
        self.primary = PipeSender(primary_writer, "jobs-primary", direct=True, spacing=SPACING_SECONDS)
        self.secondary = PipeSender(secondary_writer, "jobs-secondary", direct=True, spacing=SPACING_SECONDS)
        self.sent_secondary = 0  # parent side: jobs put on the secondary pipe
        #: bumped by the child while its board answers (the systemd watchdog reads it)
        self.heartbeat = Heartbeat(SPAWN)
        self.control_reader, self.control_writer = SPAWN.Pipe(duplex=False)
        self.reports_reader, self.reports_writer = SPAWN.Pipe(duplex=False)
        self.results = results
        self.log_queue = log_queue
        self.log_level = logging.WARNING
        self._stats = SinkStats()
        self._running = threading.Event()  # the child reached `run` (past its start-up)
        #: the days whose manifest `run --once`'s last round left (day -> why), once the child said so
        self.manifests_left: dict[str, str] | None = None
        self.manifests_settled = threading.Event()
        self._reader: threading.Thread | None = None
        self.wants_results = False  # the child's copy: whether the parent has a `results` queue

    def __getstate__(self) -> dict[str, Any]:
        """What the child receives: its ends of the pipes, the heartbeat, the log level, whether to send results."""
        return {name: self.__dict__[name] for name in CHILD_ENDS} | {"wants_results": self.results is not None}

    # --- parent side

    def start_reading(self) -> None:
        """Before the child starts: pass it the parent's log level, and read its reports here."""
        self.log_level = log.getEffectiveLevel()
        self._reader = threading.Thread(
            target=read_all_into, args=(self.reports_reader, self._report), name="sink-reports", daemon=True
        )
        self._reader.start()

    def started(self) -> None:
        """Once the child runs: close the parent's copies of its ends (so that its exit reads as the pipes' end)."""
        for end in (self.primary_reader, self.secondary_reader, self.control_reader, self.reports_writer):
            end.close()

    def _report(self, message: tuple[str, Any]) -> bool:
        """Pass on one report of the child; False after its last ("end")."""
        kind, value = message
        try:
            if kind == "counts":
                self._stats = value
            elif kind == "result":
                if self.results is not None:
                    self.results.put(value)
            elif kind == "delivered":  # a result whose line is written here (`pipeline.sink.delivered_line`)
                result, at = value
                try:
                    record = delivered_line.record(result, at)
                    if self.log_queue is not None:  # (`_log`, without its call: this is every delivered file)
                        self.log_queue.put_nowait(record)
                    else:
                        replay_in_parent(record)
                finally:  # a caller's log queue that takes no more loses the line, never the result
                    results = self.results
                    if results is not None:  # (the sink removed the file: a `put_removed` need not look)
                        getattr(results, "put_removed", results.put)(result)
            elif kind == "log":
                self._log(value)
            elif kind == "running":
                self._running.set()
            elif kind == "manifests":
                self.manifests_left = value
                self.manifests_settled.set()
        except Exception as error:  # a caller's queue that was closed must not end the reports of the rest
            log.debug("a report of the sink could not be passed on (%s: %s)", type(error).__name__, error)
        return kind != "end"

    def _log(self, record: logging.LogRecord) -> None:
        """A record of the child's: onto the caller's `log_queue`, else through the parent's loggers."""
        if self.log_queue is not None:
            self.log_queue.put_nowait(record)
        else:
            replay_in_parent(record)

    def reached_run(self, exited: bool) -> bool:
        """Whether the child said it reached `run`; for a child that `exited`, after its last reports are read."""
        if not self._running.is_set() and exited:
            self.drain(1.0)
        return self._running.is_set()

    def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until every report the child sent has been passed on."""
        if self._reader is not None:
            self._reader.join(timeout)

    def put(self, job: UploadJob) -> None:
        """Live jobs on the primary pipe, the rest on the secondary (counted: see `backfill_queued`)."""
        if job.priority == Priority.LIVE:
            self.primary.put(job)
        else:
            self.secondary.put(job)
            self.sent_secondary += 1

    def backfill_queued(self) -> int:
        """Backfill jobs no worker has taken yet: ready on the sink's board, or still on their way to it."""
        stats = self._stats
        return stats.queued_secondary + max(0, self.sent_secondary - stats.received_secondary)

    def stats(self) -> SinkStats:
        return self._stats

    def send_stop(self, deadline: float) -> None:
        """The stop message: the child finishes its transfers within `deadline` s (a gone child cannot read it)."""
        with contextlib.suppress(OSError):
            self.control_writer.send(deadline)

    def send_finish_manifests(self, attempts: int) -> None:
        """Ask the child for `run --once`'s last round of manifests; it answers with a "manifests" report."""
        with contextlib.suppress(OSError):
            self.control_writer.send((FINISH_MANIFESTS, attempts))

    def release(self) -> None:
        """After the child exited: pass on its last reports, drop unsent jobs (still files in the outbox), close."""
        self.drain(DRAIN_SECONDS)
        for end in (self.primary_reader, self.secondary_reader, self.control_reader, self.reports_writer):
            end.close()  # when the child never started (no-ops when it did): a sender's blocked write ends
        for sender in (self.primary, self.secondary):
            sender.close(0.5, discard=True)
        self.control_writer.close()
        if self._reader is None or not self._reader.is_alive():
            self.reports_reader.close()

    # --- child side

    def child_ends(self, journal: str | None, manifests: str | None) -> ChildEnds:
        """The child's view (in the child only), with the `.part` journal's path and the manifests' folder."""
        reports = PipeSender(self.reports_writer, "reports", spacing=SPACING_SECONDS)
        counters = SinkCounters()
        counters.on_change = lambda: reports.put_latest("counts", lambda: ("counts", counters.snapshot()))
        return ChildEnds(
            self.primary_reader,
            self.secondary_reader,
            self.control_reader,
            reports,
            self.wants_results,
            self.log_level,
            counters,
            self.heartbeat,
            journal,
            manifests,
        )
