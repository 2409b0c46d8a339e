"""The usual delivery's log line (delivered, verified, removed from the outbox), made where it is written.

Most results are this one line. In the sink process it would be a log record built, pickled, sent
up the reports pipe and unpickled in the parent, beside the result that says the same: per file,
that cost both processes more than the line itself. So the sink sends the result alone, marked as
"delivered" (`pipeline.sink.channels`), and the parent makes the record here, with the text and
the extra fields (`pipeline.app.logs`) the sink would have given it. Every other result line is
still made in the sink (`pipeline.sink.result_log`), and so is this one when the sink logs by itself.
"""

from __future__ import annotations

import logging

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
    return made_by_logging(args, at, extra_of(result))


def made_by_logging(args: tuple[object, ...], at: float, extra: dict[str, object]) -> logging.LogRecord:
    """The record as `Logger.makeRecord` makes it, with the time `at`."""
    made = log.makeRecord(log.name, logging.INFO, _NO_FILE, 0, TEXT, args, None, _NO_FUNCTION, extra)
    # The sink's time, not the reading's. Shifted, not recomputed: how `relativeCreated` is counted differs
    # between Python versions.
    made.relativeCreated -= (made.created - at) * 1000
    made.created, made.msecs = at, int((at - int(at)) * 1000) + 0.0
    return made


def write(result: UploadResult) -> None:
    """Log the line here (the sink logging by itself)."""
    log.info(TEXT, result.local_path, result.remote_path, result.bytes, result.seconds, extra=extra_of(result))
