"""`run --once`: deliver every finished file the outbox holds when it starts, without watching, then report.

"Present at the start" is the promise: a file written a moment before (a cron job right after a
recording) is waited for until it has been quiet for the debounce, a file some process still has
open for writing is waited for while the settle window lasts, and whatever is left is named with
the reason; then every pending day's SHA256SUMS goes up (`pipeline.cli.once_manifests`). The exit
code says whether everything present was delivered and every manifest went up. Waits are bounded on the
monotonic clock; a server that cannot be reached or refuses the login ends the run (see
`UploadPolicy.connect_attempts`), and so does SIGTERM or SIGINT, all with exit code 1 when work remains.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from operators.file_rules import is_daily_csv
from operators.job_mapping import job_for
from operators.model import EventKind, FileEvent, Priority, UploadJob
from pipeline.app.options import UploaderOptions
from pipeline.app.running import RunningPipeline
from pipeline.app.stats import UploadStats, format_bytes
from pipeline.cli import exit_codes
from pipeline.cli.once_manifests import finish_manifests, report_manifests
from pipeline.cli.stop_signals import stop_on_signals
from pipeline.outbox.file_state import finished_file_stat, regular_file_stat
from pipeline.outbox.lock import OutboxLock
from pipeline.sink.journal import unsent_days
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.retry import connect_attempts_for, once_gives_up
from pipeline.stream.scan import is_orphan_csv, is_young, iter_outbox, outbox_root
from pipeline.stream.scan_jobs import StationNameCheck, quiet_period, with_state_folder

if TYPE_CHECKING:
    from pipeline.sink.prestart import EarlySink

log = logging.getLogger("beemon.once")
#: How often files still open for writing are looked at again (no event tells when they close).
RECHECK_SECONDS = 0.1
#: The settle window is this many quiet periods from the start: a file still written after it is a
#: recording in progress, for the next run.
SETTLE_QUIET_PERIODS = 2
OPEN_FOR_WRITING = "still open for writing"
STILL_CHANGING = "still being written (changed within the quiet period)"


@dataclass
class OnceProgress:
    """Which jobs are still open, which failed for good, and the figures of the progress bar."""

    max_retries: int
    open_jobs: dict[str, int] = field(default_factory=dict)  # local path -> size
    failures: dict[str, int] = field(default_factory=dict)
    undelivered: dict[str, str] = field(default_factory=dict)  # local path -> last reply
    delivered_files: int = 0
    delivered_bytes: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)

    def result(self, result: UploadResult) -> None:
        with self.changed:
            if result.local_path not in self.open_jobs:
                return
            if result.outcome == Outcome.DELIVERED:
                self.delivered_files += 1
                self.delivered_bytes += self.open_jobs.pop(result.local_path)
            elif result.outcome == Outcome.GONE:
                self.open_jobs.pop(result.local_path)
            elif result.outcome.failed:
                failures = self.failures.get(result.local_path, 0) + 1
                self.failures[result.local_path] = failures
                if once_gives_up(failures, result.outcome, self.max_retries):
                    self.open_jobs.pop(result.local_path)
                    self.undelivered[result.local_path] = result.reply
            self.changed.notify_all()


class Settling:
    """The files present at the start that are not finished yet: each is handed out once it is.

    `ready()` returns the jobs of the files that became finished (closed, and quiet for `quiet`
    seconds); `due()` is when to look again; `left()` the rest with the reason, once the window ends.
    """

    def __init__(self, options: UploaderOptions, quiet: float, paths: list[str], day_files: set[str]) -> None:
        self.options = options
        self.quiet = quiet
        self.day_files = day_files
        self.station_check = StationNameCheck(options.station)
        self.waiting: dict[str, str] = dict.fromkeys(paths, "")  # path -> why it is not ready yet

    def ready(self) -> Iterator[UploadJob]:
        for path in list(self.waiting):
            st = regular_file_stat(path)
            if st is None:  # removed meanwhile: nothing to deliver
                del self.waiting[path]
                log.debug("%s vanished before it was finished", path)
                continue
            if is_young(st.st_mtime, time.time(), self.quiet):
                self.waiting[path] = STILL_CHANGING
                continue
            if finished_file_stat(path) is None:
                self.waiting[path] = OPEN_FOR_WRITING
                continue
            del self.waiting[path]
            kind = EventKind.DAY_FILE if path in self.day_files else EventKind.FOUND
            event = FileEvent(kind, path, priority=Priority.BACKFILL)
            job = job_for(
                event,
                outbox=outbox_root(self.options.outbox),
                remote_root=self.options.target.remote_root,
                station=self.options.station,
                stat=finished_file_stat,
            )
            if job is not None:
                self.station_check(job)
                yield job

    def due(self) -> float:
        """Seconds until a waiting file may be ready (its quiet period ends, or the next look at an open one)."""
        soonest = RECHECK_SECONDS
        now = time.time()
        for path, why in self.waiting.items():
            if why == STILL_CHANGING:
                st = regular_file_stat(path)
                if st is not None:
                    soonest = min(soonest, max(0.0, st.st_mtime + self.quiet - now))
        return soonest

    def left(self) -> dict[str, str]:
        return {path: why or OPEN_FOR_WRITING for path, why in self.waiting.items()}


def present_files(options: UploaderOptions) -> tuple[list[str], set[str]]:
    """Every file in the outbox now that may be uploaded, in backfill order, and which of them are day files.

    A day file is a past day's bare `.csv` whose `.final` never came (`is_orphan_csv`): it is
    delivered as that day's file, as the daemon's backfill does.
    """
    root = outbox_root(options.outbox)
    if not os.path.isdir(root):
        return [], set()
    orphan_after = options.orphan_csv_after_seconds
    paths: list[str] = []
    day_files: set[str] = set()
    entries = iter_outbox(
        root,
        order=options.backfill_order,
        ignore_patterns=with_state_folder(options.ignore_patterns),
        day_files=orphan_after is not None,
    )
    for day, mtime_ns, path in entries:
        if is_daily_csv(path):
            if orphan_after is None or not is_orphan_csv(path, day, mtime_ns / 1e9, time.time(), orphan_after):
                continue
            day_files.add(path)
        paths.append(path)
    return paths, day_files


def upload_once(
    options: UploaderOptions, *, max_retries: int = 5, progress: bool = False, early: EarlySink | None = None
) -> int:
    """Exit code 0 when every file present at the start was delivered, 1 (naming the rest and why) otherwise.

    `max_retries` is the attempts after the first, per file and for reaching the server. Raises
    `OutboxBusy` (before reading the outbox) when another uploader works it. `early`: the sink's
    process, started before the settings were read (`pipeline.sink.prestart`); the caller closes it.
    """
    with OutboxLock(options.outbox):
        return _upload_once(options, max_retries=max_retries, progress=progress, early=early)


def _upload_once(options: UploaderOptions, *, max_retries: int, progress: bool, early: EarlySink | None) -> int:
    # The pipeline starts first (its logins overlap the scan): a setting that cannot work (a metrics
    # port in use) ends the run in one line before anything else is said.
    started = time.monotonic()
    quiet = quiet_period(options.observer, options.debounce_seconds, options.polling_interval)
    options = options.replace(policy=replace(options.policy, connect_attempts=connect_attempts_for(max_retries)))
    state = OnceProgress(max_retries=max_retries)
    stop = threading.Event()
    with (
        stop_on_signals(stop),
        RunningPipeline(options, UploadStats(), on_result=state.result, watch=False, early=early) as running,
    ):
        paths, day_files = present_files(options)
        sizes = {path: st.st_size for path in paths if (st := regular_file_stat(path)) is not None}
        total_bytes = sum(sizes.values())
        log.info("%d files to deliver (%s) in %s", len(paths), format_bytes(total_bytes), options.outbox)
        settling = Settling(options, quiet, paths, day_files)
        bar = _progress_bar(len(paths), total_bytes) if progress and paths else None
        if bar is not None:
            # The bar replaces the per-file lines on a terminal; warnings and errors still print.
            logging.getLogger("beemon.sink").setLevel(logging.WARNING)
        settle_until = started + SETTLE_QUIET_PERIODS * quiet
        cause = _deliver(running, settling, state, stop, settle_until=settle_until, bar=bar, files=len(paths))
        folder = running.helper.manifests_folder if running.helper is not None else None
        manifests: dict[str, str] = {}
        if not cause and folder is not None:
            manifests, cause = finish_manifests(running, folder, stop, attempts=max_retries + 1)
    if cause and folder is not None:  # the run broke: journals with lines the server lacks stay, for the next run
        manifests = dict.fromkeys(unsent_days(folder), cause)
    if bar is not None:
        _show(bar, state, len(paths))  # the last results may have come after its last refresh
        bar.close()
    log.info(
        "delivered %d of %d files (%s) in %.1f s",
        state.delivered_files,
        len(paths),
        format_bytes(state.delivered_bytes),
        time.monotonic() - started,
    )
    return max(_report(state.undelivered, cause), report_manifests(manifests, folder, cause, max_retries + 1))


def _deliver(
    running: RunningPipeline,
    settling: Settling,
    state: OnceProgress,
    stop: threading.Event,
    *,
    settle_until: float,
    bar: Any,
    files: int,
) -> str:
    """Submit the files as they settle until every job has ended or the run broke; returns why it broke, or "".

    Files still settling at `settle_until` are left (with why); when the pipeline fails or a signal
    stops the run, every open and settling file is left with that cause.
    """
    while True:
        for job in settling.ready():
            with state.changed:
                state.open_jobs[job.local_path] = job.size
            running.submit(job)
        if settling.waiting and time.monotonic() >= settle_until:
            state.undelivered.update(settling.left())
            settling.waiting.clear()
        broken = running.failure() or ("stopped by a signal" if stop.is_set() else None)
        with state.changed:
            if broken is not None:
                left = {**dict.fromkeys(state.open_jobs, broken), **dict.fromkeys(settling.waiting, broken)}
                state.undelivered.update(left)
                state.open_jobs.clear()
                settling.waiting.clear()
                return broken
            if not state.open_jobs and not settling.waiting:
                return ""
            wait = min(settling.due(), settle_until - time.monotonic()) if settling.waiting else 0.5
            state.changed.wait(max(0.01, wait))
        if bar is not None:
            _show(bar, state, files)


def _show(bar: Any, state: OnceProgress, files: int) -> None:
    """The bar at the figures of `state` now."""
    bar.n = state.delivered_bytes
    bar.set_postfix_str(f"{state.delivered_files}/{files} files", refresh=True)


def _report(undelivered: dict[str, str], cause: str) -> int:
    """Name what is left and why: one line for a cause that held back every file, else one per file."""
    if not undelivered:
        return exit_codes.OK
    if cause:
        log.error("%s; %d file(s) left in the outbox", cause, len(undelivered))
        for path in sorted(undelivered):
            log.info("left in the outbox: %s", path)
    else:
        for path, reply in sorted(undelivered.items()):
            log.error("not delivered: %s (%s)", path, reply)
    return exit_codes.FAILURES_REMAIN


def _progress_bar(files: int, total_bytes: int):  # noqa: ANN202 - tqdm's type
    """Files, bytes, rate and time left on one line.

    The terminal's size is passed in: a terminal reporting 0 rows (a fresh pty) makes tqdm print nothing.
    """
    from tqdm import tqdm

    size = shutil.get_terminal_size((80, 24))
    return tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        unit_divisor=1000,
        desc=f"uploading {files} files",
        ncols=size.columns,
        nrows=size.lines,
    )
