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


def extra_of(result: UploadResult) -> dict[str, object]:
    """The extra fields every result line of the sink carries."""
    return {
        "file": result.local_path,
        "remote": result.remote_path,
        "size": result.bytes,
        "seconds": round(result.seconds, 3),
        "attempt": result.attempt,
        "outcome": result.outcome.value,
        "reply": result.reply,
    }


def record(result: UploadResult, at: float) -> logging.LogRecord:
    """The line's record, as the sink's logger would have made it at `at` (its `time.time()` when the file was
    settled: the parent may read the report later) and without a caller (the sink's records name none)."""
    args = (result.local_path, result.remote_path, result.bytes, result.seconds)
    made = log.makeRecord(
        log.name, logging.INFO, "(unknown file)", 0, TEXT, args, None, "(unknown function)", extra_of(result)
    )
    # The sink's time, not the reading's. Shifted, not recomputed: how `relativeCreated` is counted differs
    # between Python versions.
    made.relativeCreated -= (made.created - at) * 1000
    made.created, made.msecs = at, int((at - int(at)) * 1000) + 0.0
    return made


def write(result: UploadResult) -> None:
    """Log the line here (the sink logging by itself)."""
    log.info(TEXT, result.local_path, result.remote_path, result.bytes, result.seconds, extra=extra_of(result))
