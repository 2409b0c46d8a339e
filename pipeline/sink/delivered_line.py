"""The usual delivery's log line (delivered, verified, removed from the outbox), made where it is written.

Most results are this one line. In the sink process it would be a log record built, pickled, sent
up the reports pipe and unpickled in the parent, beside the result that says the same: per file,
that cost both processes more than the line itself. So the sink sends the result alone, marked as
"delivered" (`pipeline.sink.channels`), and the parent makes the record here, with the text and
the extra fields (`pipeline.app.logs`) the sink would have given it. Every other result line is
still made in the sink (`pipeline.sink.result_log`), and so is this one when the sink logs by itself.

The record is the one `Logger.makeRecord` makes, attribute for attribute and in the same order, but
filled in directly (`_Records`): `LogRecord.__init__` works out, for every file, a file name and a
module from a path that is always "(unknown file)", and a time that is replaced at once by the sink's.
Where logging was told to make records some other way (`logging.setLogRecordFactory`, a logger class
of its own) or a Python's records hold other attributes, they are made by logging, as before.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from pipeline.sink.model import UploadResult

log = logging.getLogger("beemon.sink")

TEXT = "delivered %s -> %s (%d B, %.2f s), removed from the outbox (verified on the server)"
#: Where the sink's records come from: none of them names its caller.
_NO_FILE, _NO_FUNCTION = "(unknown file)", "(unknown function)"


def extra_of(result: UploadResult) -> dict[str, object]:
    """The extra fields every result line of the sink carries."""
    return {
        "file": result.local_path,
        "remote": result.remote_path,
        "size": result.bytes,
        "seconds": round(result.seconds, 3),
        "attempt": result.attempt,
        "outcome": result.outcome._value_,  # `.value`, without the enum property's Python call
        "reply": result.reply,
    }


def record(result: UploadResult, at: float) -> logging.LogRecord:
    """The line's record, as the sink's logger would have made it at `at` (its `time.time()` when the file was
    settled: the parent may read the report later) and without a caller (the sink's records name none)."""
    args = (result.local_path, result.remote_path, result.bytes, result.seconds)
    made = _records.make(args, at, extra_of(result))
    return made if made is not None else made_by_logging(args, at, extra_of(result))


def made_by_logging(args: tuple[object, ...], at: float, extra: dict[str, object]) -> logging.LogRecord:
    """The record as `Logger.makeRecord` makes it, with the time `at`."""
    made = log.makeRecord(log.name, logging.INFO, _NO_FILE, 0, TEXT, args, None, _NO_FUNCTION, extra)
    # The sink's time, not the reading's. Shifted, not recomputed: how `relativeCreated` is counted differs
    # between Python versions.
    made.relativeCreated -= (made.created - at) * 1000
    made.created, made.msecs = at, int((at - int(at)) * 1000) + 0.0
    return made


_new_record = logging.LogRecord.__new__
#: The record factory and `makeRecord` of a logging nobody told to make records otherwise.
_STOCK_FACTORY = logging.LogRecord
_STOCK_MAKE_RECORD = logging.Logger.makeRecord
#: The attributes this module fills in, in `LogRecord.__init__`'s order (Python 3.12 added `taskName`).
_ATTRIBUTES = (
    "name",
    "msg",
    "args",
    "levelname",
    "levelno",
    "pathname",
    "filename",
    "module",
    "exc_info",
    "exc_text",
    "stack_info",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
)


class _Records:
    """Makes the line's records directly, once it has checked that they come out as logging's own."""

    def __init__(self) -> None:
        self._checked = False
        self._same = False  # this Python's records hold exactly `_ATTRIBUTES` (and `taskName` where it has it)
        self._tasks = False  # ... and `taskName`
        self._start = 0.0  # logging's start, in seconds since the epoch (for `relativeCreated`)
        self._template: dict[str, object] = {}  # a sample record's attributes

    def _check(self) -> None:
        sample = made_by_logging((), 0.0, {})
        names = tuple(sample.__dict__)
        self._tasks = names == (*_ATTRIBUTES, "taskName")
        self._same = names == _ATTRIBUTES or self._tasks
        self._start = -sample.relativeCreated / 1000  # (made at 0.0: minus the start)
        self._template = dict(sample.__dict__)  # `make` replaces every attribute that differs from line to line
        self._checked = True

    def make(self, args: tuple[object, ...], at: float, extra: dict[str, object]) -> logging.LogRecord | None:
        """What `made_by_logging` gives, without `LogRecord.__init__` (see the module docstring); None where
        logging is told to make records its own way, or where this Python's records are not known here."""
        if logging.getLogRecordFactory() is not _STOCK_FACTORY or type(log).makeRecord is not _STOCK_MAKE_RECORD:
            return None
        if not self._checked:
            self._check()
        if not self._same:
            return None
        made = _new_record(_STOCK_FACTORY)
        if logging.logThreads:
            thread, thread_name = threading.get_ident(), threading.current_thread().name
        else:
            thread = thread_name = None
        process_name = None
        if logging.logMultiprocessing:
            mp = sys.modules.get("multiprocessing")
            try:
                process_name = "MainProcess" if mp is None else mp.current_process().name
            except Exception:  # as logging: the name stays "MainProcess"
                process_name = "MainProcess"
        state = self._template.copy()  # (the constant attributes, in their order: a copy is cheaper than a literal)
        state["args"] = args
        state["levelname"] = logging.getLevelName(logging.INFO)
        state["created"] = at
        state["msecs"] = int((at - int(at)) * 1000) + 0.0
        state["relativeCreated"] = (at - self._start) * 1000
        state["thread"] = thread
        state["threadName"] = thread_name
        state["processName"] = process_name
        state["process"] = os.getpid() if logging.logProcesses and hasattr(os, "getpid") else None
        if self._tasks:
            state["taskName"] = _task_name()
        state.update(extra)
        made.__dict__ = state
        return made


def _task_name() -> str | None:
    """`LogRecord.taskName` (Python 3.12 on): the running asyncio task's name, when logging is told to note it."""
    if not getattr(logging, "logAsyncioTasks", False):
        return None
    asyncio = sys.modules.get("asyncio")
    if asyncio:
        try:
            return asyncio.current_task().get_name()  # type: ignore[union-attr]
        except Exception:  # as logging: no task, no name
            return None
    return None


_records = _Records()


def write(result: UploadResult) -> None:
    """Log the line here (the sink logging by itself)."""
    log.info(TEXT, result.local_path, result.remote_path, result.bytes, result.seconds, extra=extra_of(result))
