"""The sink process's plumbing: jobs in from the parent's queues, log records out to the parent, SIGTERM.

The child's "beemon.sink" records travel on a log queue (`log_to_queue`); the parent replays each
through its own logger of the same name (`ReplayInParent`), so they land in its handlers and formats.
"""

from __future__ import annotations

import logging
import threading
from logging.handlers import QueueHandler
from multiprocessing.queues import Queue
from typing import Any

from pipeline.sink.model import SinkCounters
from pipeline.sink.workers import Sink

#: How long the child waits for its results and log records to reach the pipes before it exits.
FLUSH_SECONDS = 5.0


class Terminated(Exception):
    """SIGTERM arrived while the child waited for its stop message."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def feed(queue: Queue[Any], sink: Sink, counters: SinkCounters | None = None) -> None:
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


def flush(queue: Queue[Any]) -> None:
    """Let the queue's feeder thread write what is buffered, but never hang the exit on a full pipe."""
    queue.close()
    joiner = threading.Thread(target=queue.join_thread, daemon=True)
    joiner.start()
    joiner.join(FLUSH_SECONDS)
    if joiner.is_alive():
        queue.cancel_join_thread()


def log_to_queue(queue: Queue[Any], level: int) -> None:
    """In the child: every "beemon.sink" record goes to the log queue; nothing else does."""
    logger = logging.getLogger("beemon.sink")
    logger.handlers[:] = [QueueHandler(queue)]
    logger.setLevel(level)
    logger.propagate = False


class ReplayInParent(logging.Handler):
    """In the parent: hand a record from the child to the parent's logger of the same name."""

    def emit(self, record: logging.LogRecord) -> None:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)
