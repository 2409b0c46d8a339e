"""`run --once`: deliver everything ready in the outbox now, without watching, then report."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass, field

from pipeline import exit_codes
from pipeline.job_stream import scan_jobs
from pipeline.options import UploaderOptions
from pipeline.stats import UploadStats, format_bytes
from pipeline.upload_helper import UploadResult
from pipeline.uploader import RunningPipeline

log = logging.getLogger("beemon.once")


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
            if result.outcome == "delivered":
                self.delivered_files += 1
                self.delivered_bytes += self.open_jobs.pop(result.local_path)
            elif result.outcome == "gone":
                self.open_jobs.pop(result.local_path)
            elif result.outcome in ("retry", "parked", "changed"):
                failures = self.failures.get(result.local_path, 0) + 1
                self.failures[result.local_path] = failures
                if failures > self.max_retries or result.outcome == "parked":
                    self.open_jobs.pop(result.local_path)
                    self.undelivered[result.local_path] = result.reply
            self.changed.notify_all()


class _Offline:
    """Gives up when no session was open for as long as `max_retries` connection retries take.

    A wrong password or an unreachable server yields no result for any file (the sink never gets
    to try one), so without this `--once` would wait for ever.
    """

    def __init__(self, options: UploaderOptions, max_retries: int) -> None:
        self.limit = (max_retries + 1) * options.policy.retry_max + options.ftp.timeout
        self.where = f"{options.ftp.host}:{options.ftp.port}"
        self.since: float | None = None

    def given_up(self, running: RunningPipeline) -> str | None:
        now = time.monotonic()
        if running.helper is not None and running.helper.stats().sessions > 0:
            self.since = None
        elif self.since is None:
            self.since = now
        elif now - self.since > self.limit:
            return f"no session could connect to or log in at {self.where} for {now - self.since:.0f} s"
        return None


def upload_once(options: UploaderOptions, *, max_retries: int = 5, progress: bool = False) -> int:
    """Exit code 0 when every ready file was delivered, 1 (listing the rest) otherwise.

    The pipeline starts first: a setting that cannot work (a metrics port in use) ends the run in
    one line before anything else is said.
    """
    with RunningPipeline(options, UploadStats(), on_result=lambda result: state.result(result), watch=False) as running:
        # Ready means finished: not open for writing, and quiet for the debounce.
        jobs = list(
            scan_jobs(
                options.outbox,
                remote_root=options.ftp.remote_root,
                station=options.station,
                ignore_patterns=options.ignore_patterns,
                backfill_order=options.backfill_order,
                min_age_seconds=options.debounce_seconds,
            )
        )
        state = OnceProgress(max_retries=max_retries, open_jobs={job.local_path: job.size for job in jobs})
        total_bytes = sum(job.size for job in jobs)
        log.info("%d files ready (%s) in %s", len(jobs), format_bytes(total_bytes), options.outbox)
        bar = _progress_bar(len(jobs), total_bytes) if progress and jobs else None
        if bar is not None:
            # The bar replaces the per-file lines on a terminal; warnings and errors still print.
            logging.getLogger("beemon.sink").setLevel(logging.WARNING)
        started = time.monotonic()
        offline = _Offline(options, max_retries)
        for job in jobs:
            running.submit(job)
        with state.changed:
            while state.open_jobs:
                state.changed.wait(0.5)
                broken = running.failure() or offline.given_up(running)
                if broken is not None:
                    log.error("%s", broken)
                    state.undelivered.update(dict.fromkeys(state.open_jobs, broken))
                    state.open_jobs.clear()
                if bar is not None:
                    bar.n = state.delivered_bytes
                    bar.set_postfix_str(f"{state.delivered_files}/{len(jobs)} files", refresh=True)
    if bar is not None:
        bar.close()
    seconds = time.monotonic() - started
    log.info(
        "delivered %d of %d files (%s) in %.1f s",
        state.delivered_files,
        len(jobs),
        format_bytes(state.delivered_bytes),
        seconds,
    )
    if state.undelivered:
        for path, reply in sorted(state.undelivered.items()):
            log.error("not delivered: %s (%s)", path, reply)
        return exit_codes.FAILURES_REMAIN
    return exit_codes.OK


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
