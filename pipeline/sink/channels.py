"""What the parent shares with the sink process: the job queues, the control pipe, the shared counters, the logs.

`UploadHelper` (pipeline.sink.process) holds one `Channels`. It travels to the child when the
process starts (spawn pickles it) without the parent-only parts, the control pipe's write end and
the log listener; the child reads the same objects as its `ChildEnds`. The parent puts live jobs on
the primary queue and backfill on the secondary, reads the counts from shared memory, sends the
stop deadline down the pipe and replays the child's log records through its own loggers.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from logging.handlers import QueueListener
from multiprocessing.queues import Queue
from typing import Any

from operators.model import Priority, UploadJob
from pipeline.sink.child import ChildEnds, ReplayInParent
from pipeline.sink.heartbeat import Heartbeat
from pipeline.sink.model import SinkCounters, SinkStats

#: The start method of the processes: the parent runs watchdog threads, and fork with threads is unsafe.
SPAWN = multiprocessing.get_context("spawn")
log = logging.getLogger("beemon.sink")


class Channels:
    """The queues, pipe, shared counters and events between the parent and the child."""

    def __init__(self, log_queue: Queue[Any] | None) -> None:
        self.primary: Queue[Any] = SPAWN.Queue()
        self.secondary: Queue[Any] = SPAWN.Queue()
        self.sent_secondary = 0  # parent side: jobs put on the secondary queue
        self.counters = SinkCounters(SPAWN)
        #: bumped by the child while its board answers (the systemd watchdog reads it)
        self.heartbeat = Heartbeat(SPAWN)
        self.control_reader, self.control_writer = SPAWN.Pipe(duplex=False)
        self.running = SPAWN.Event()  # set by the child once it reached `run` (past its start-up)
        self.own_log_queue = log_queue is None
        self.log_queue: Queue[Any] = log_queue if log_queue is not None else SPAWN.Queue()
        self.log_level = logging.WARNING
        self.listener: QueueListener | None = None

    def __getstate__(self) -> dict[str, Any]:
        """What the child receives: everything but the pipe's write end and the parent's listener thread."""
        state = dict(self.__dict__)
        state.update(listener=None, control_writer=None)
        return state

    # --- parent side

    def replay_logs(self) -> None:
        """Before the child starts: pass it the parent's log level, and replay its records here."""
        self.log_level = log.getEffectiveLevel()
        if self.own_log_queue:
            self.listener = QueueListener(self.log_queue, ReplayInParent())
            self.listener.start()

    def put(self, job: UploadJob) -> None:
        """Live jobs on the primary queue, the rest on the secondary (counted: see `backfill_queued`)."""
        if job.priority == Priority.LIVE:
            self.primary.put(job)
        else:
            self.secondary.put(job)
            self.sent_secondary += 1

    def backfill_queued(self) -> int:
        """Backfill jobs no worker has taken yet: ready on the sink's board, or still on their way to it."""
        stats = self.counters.snapshot()
        return stats.queued_secondary + max(0, self.sent_secondary - stats.received_secondary)

    def stats(self) -> SinkStats:
        return self.counters.snapshot()

    def send_stop(self, deadline: float) -> None:
        """The stop message: the child finishes its transfers within `deadline` s (a gone child cannot read it)."""
        with contextlib.suppress(OSError):
            self.control_writer.send(deadline)

    def release(self) -> None:
        """After the child exited: close the parent's ends (unsent jobs are still files in the outbox)."""
        for queue in (self.primary, self.secondary):
            queue.cancel_join_thread()
            queue.close()
        self.control_writer.close()
        if self.listener is not None:
            self.listener.stop()
            self.listener = None

    # --- child side

    def child_ends(self, results: Queue[Any] | None, journal: str | None, manifests: str | None) -> ChildEnds:
        """The child's view, with the results queue, the `.part` journal's path and the manifests' folder."""
        return ChildEnds(
            self.primary,
            self.secondary,
            self.control_reader,
            results,
            self.log_queue,
            self.log_level,
            self.counters,
            self.heartbeat,
            journal,
            manifests,
        )
