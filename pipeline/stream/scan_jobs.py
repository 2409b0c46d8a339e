"""The jobs of one scan of the outbox, without the stream, and the rules the stream shares with them.

`run --once`, `--dry-run` and the original API's `populate_secondary_queue` scan the outbox once;
the stream (`pipeline.stream.jobs`) watches it and scans it again and again. Both name their
jobs by the same rules, kept here: the state folder is always ignored, a file named for another
station is said once, and "quiet" with the polling observer means two polls. Nothing here loads
the stream's libraries (reactivex, watchdog): a `run --once` pays for none of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

from operators.choices import DEFAULT_IGNORE_PATTERNS
from operators.job_mapping import job_for
from operators.model import UploadJob
from operators.readiness import is_ready
from operators.remote_path import station_in_name
from pipeline.outbox.file_state import finished_file_stat
from pipeline.outbox.lock import STATE_FOLDER
from pipeline.stream.scan import outbox_root, scan_outbox

#: The lines keep the stream's logger name, which they had before this module held them.
log = logging.getLogger("beemon.stream.jobs")


def with_state_folder(ignore_patterns: Sequence[str]) -> tuple[str, ...]:
    """The ignore patterns, always with the uploader's own state folder (its lock): whatever the settings say."""
    patterns = tuple(ignore_patterns)
    return patterns if STATE_FOLDER in patterns else (*patterns, STATE_FOLDER)


class StationNameCheck:
    """One warning per `<station>@` prefix in file names that is not the configured station.

    The station folder is always the configured station (`operators.remote_path.station_folder`);
    a name that says otherwise is filed under it, and said so once, not once per file.
    """

    def __init__(self, station: str) -> None:
        self.station = station
        self._warned: set[str] = set()
        #: A name that starts with `<station>@` is named for this station or for none: no parse (every job is checked).
        self._own = f"{station}@" if station and "@" not in station else None

    def __call__(self, job: UploadJob) -> None:
        name = os.path.basename(job.local_path)
        if self._own is not None and name.startswith(self._own):
            return
        named = station_in_name(name)
        if named is None or named == self.station or named in self._warned:
            return
        self._warned.add(named)
        log.warning(
            "%s is named for the station %r, but this station is %r (the station setting): its files go to"
            " the %r folder on the server; if this Pi was renamed, set station = %r",
            job.local_path,
            named,
            self.station,
            self.station,
            named,
        )


def quiet_period(observer: str, debounce_seconds: float, polling_interval: float) -> float:
    """The debounce actually used: with polling, at least two polls, so "quiet" means a size that stopped changing.

    A poll only sees a change at its next turn; a debounce shorter than that would call a file
    that is still growing quiet.
    """
    if observer == "polling":
        return max(debounce_seconds, 2 * polling_interval)
    return debounce_seconds


def scan_jobs(
    outbox: str,
    *,
    remote_root: str,
    station: str,
    ignore_patterns: Sequence[str] = DEFAULT_IGNORE_PATTERNS,
    backfill_order: str = "newest",
    min_age_seconds: float = 0.0,
    orphan_csv_after_seconds: float | None = None,
) -> Iterator[UploadJob]:
    """The backfill jobs for the files in `outbox` now, lazily, in `backfill_order`; no watching.

    For `run --once` and the original API's `populate_secondary_queue`: the same scan, readiness
    rule and mapping as the stream's backfill; a file some process has open for writing is skipped.
    """
    root = outbox_root(outbox)
    patterns = with_state_folder(ignore_patterns)
    check = StationNameCheck(station)
    events = scan_outbox(
        root,
        order=backfill_order,
        ignore_patterns=patterns,
        min_age_seconds=min_age_seconds,
        orphan_csv_after_seconds=orphan_csv_after_seconds,
    )
    for event in events:
        if is_ready(event, patterns, root):
            job = job_for(event, outbox=root, remote_root=remote_root, station=station, stat=finished_file_stat)
            if job is not None:
                check(job)
                yield job
