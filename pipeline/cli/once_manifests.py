"""The end of `run --once`: every pending day's SHA256SUMS goes up before the run exits, or is named.

A day's manifest journal is pending (`pipeline.sink.journal.pending_days`) when this run delivered files
of that day, or an earlier run (killed, cut short, refused) left lines the server's manifest lacks, or
the day is past and its manifest was never read back. Then the sink's last round puts each one up,
retried like a file (`pipeline.sink.manifest_round`), and says which days it left. With no pending
journal (an empty outbox an hour after the last delivery), nothing is asked and nothing waited for.
"""

from __future__ import annotations

import datetime
import logging
import threading
from typing import TYPE_CHECKING

from pipeline.cli import exit_codes
from pipeline.sink.journal import pending_days

if TYPE_CHECKING:
    from pipeline.app.running import RunningPipeline

log = logging.getLogger("beemon.once")
#: How often the wait for the last round looks at signals and at the sink's health.
LOOK_SECONDS = 0.1


def today() -> str:
    """The station's date, as the sink tells past days from today (local time)."""
    return datetime.date.today().isoformat()


def finish_manifests(
    running: RunningPipeline, folder: str, stop: threading.Event, *, attempts: int
) -> tuple[dict[str, str], str]:
    """The sink's last round of manifests (`UploadHelper.finish_manifests`) when a journal in `folder` is pending:
    the days it left (day folder -> why), and why the run broke meanwhile (the sink gave up, a signal), or ""."""
    helper = running.helper
    if helper is None or not pending_days(folder, today()):
        return {}, ""
    helper.finish_manifests(attempts)
    while True:
        left = helper.manifests_left(LOOK_SECONDS)
        if left is not None:
            return left, ""
        broken = running.failure() or ("stopped by a signal" if stop.is_set() else None)
        if broken is not None:
            return {}, broken


def report_manifests(left: dict[str, str], folder: str | None, cause: str, attempts: int) -> int:
    """One ERROR line per day whose manifest did not go up (why, and that its journal waits for the next run);
    the exit code: `FAILURES_REMAIN` when a day is left."""
    for day, why in sorted(left.items()):
        tried = "" if cause else f" after {attempts} attempt(s)"
        log.error(
            "the manifest %s/SHA256SUMS did not go up%s (%s): its journal stays in %s for the next run",
            day,
            tried,
            why,
            folder,
        )
    return exit_codes.FAILURES_REMAIN if left else exit_codes.OK
