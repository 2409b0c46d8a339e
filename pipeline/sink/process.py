"""UploadHelper (the original API's name): the sink, a separate process that uploads queued files.

Parent side: `queue_upload` / `submit` put jobs on the primary (live) or secondary (backfill)
queue; `stats()` reads live counts; `stop(deadline)` ends it. Child side (`run`): the `Sink`'s
worker threads, fed from both queues, each holding one persistent FTP(S) session.

The child is started as `spawn` starts one (the parent runs watchdog threads; fork with threads
is unsafe), without multiprocessing's resource tracker (`pipeline.sink.launch`), and receives only
plain values: `FtpParams`, `UploadPolicy`, pipes and a shared heartbeat counter
(`pipeline.sink.channels`). How things come back, all up one pipe that a thread of the parent reads:

- results: one `UploadResult` per attempt, put on the `results` queue when one is given: any
  queue (a `queue.Queue`, or `UploadHelper.new_queue()`, a `spawn`-context queue another process
  may read too). Keep reading it. The parent puts them there; the child never touches it.
- counts: `stats()` returns the last `SinkStats` the child sent (it sends them after every change,
  before the results that follow).
- signals: the child ignores SIGINT (a terminal's Ctrl-C reaches the whole process group; the
  parent decides) and treats a first SIGTERM (systemd stops every process of the unit) like
  `stop()` with the policy's deadline; once stopping, SIGTERM ends it at once (`terminate()`).
- logs: the child's records (loggers under "beemon.sink") come up too; the parent replays each one
  through its own logger of the same name, so they land in the parent's handlers and formats as if
  logged there. Pass `log_queue` (any queue) to receive the raw records yourself instead.
  The password is never printed: `FtpParams` masks it in its repr, and the session masks it in
  what the login steps raise (where a server may echo it). It is not replaced wherever it occurs in
  the text: a password that is a common word would then show in every masked path.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from multiprocessing.context import SpawnProcess
from multiprocessing.queues import Queue
from typing import TYPE_CHECKING, Any

from operators.choices import DEFAULT_IGNORE_PATTERNS
from operators.model import UploadJob
from pipeline.ftp.params import FtpParams
from pipeline.outbox.lock import STATE_FOLDER
from pipeline.s3.params import S3Params
from pipeline.sftp.params import SftpParams
from pipeline.sink import original_api
from pipeline.sink.channels import SPAWN, Channels
from pipeline.sink.launch import launcher
from pipeline.sink.main_guard import guard_main_module, main_module_left_out
from pipeline.sink.model import Outcome, SinkStats, UploadResult
from pipeline.sink.original_api import OriginalApi
from pipeline.sink.policy import ABORT_GRACE_SECONDS, UploadPolicy

if TYPE_CHECKING:
    from pipeline.sink.prestart import EarlySink

__all__ = ["SPAWN", "Outcome", "SinkStats", "UploadHelper", "UploadResult"]

log = logging.getLogger("beemon.sink")
#: The hidden file in the outbox that carries cut transfers' `.part` records to the next run.
PARTS_JOURNAL_NAME = ".beemon-uploader-parts.json"
#: Beyond the stop deadline: time to cut transfers, report, flush the queues and exit.
STOP_GRACE_SECONDS = ABORT_GRACE_SECONDS + 5.0


class UploadHelper(OriginalApi, SpawnProcess):
    """The sink process. Construct and `start()` in the parent; `run()` is the child's main.

    `policy.connections` sessions upload in parallel; the primary queue is always served first.
    The original uploader's methods (`queue_upload`, `upload_file`, `make_directory`,
    `make_remote_directories`, `remove_local_file`) come from `pipeline.sink.original_api`.
    """

    def __init__(
        self,
        ftp: FtpParams | SftpParams | S3Params | float | None = None,
        policy: UploadPolicy | None = None,
        results: Any = None,
        *,
        upload_queue_polling_interval_seconds: float | None = None,
        config: Any = None,
        outbox: str | None = None,
        station: str | None = None,
        log_queue: Any = None,
        name: str = "beemon-sink",
        early: EarlySink | None = None,
    ) -> None:
        """`UploadHelper(FtpParams(...), UploadPolicy(...))`, or the original API's `UploadHelper()`,
        `UploadHelper(1.0)`, `UploadHelper(upload_queue_polling_interval_seconds=1.0)`.

        The original's forms read the configuration as `Uploader(queue, config)` does (`config`,
        default None: a `beemon-config.ini` found nearby, else the site settings; see
        `pipeline.app.config_sources`), including the outbox and station that `UploadHandler(helper)`
        maps paths with. The polling interval is accepted and kept, but nothing polls: workers
        wait on the queues and wake the moment a job arrives.

        `early`: a process started ahead (`pipeline.sink.prestart`) that `start()` hands this sink to.
        """
        guard_main_module("UploadHelper(...)")
        interval = upload_queue_polling_interval_seconds
        if not isinstance(ftp, FtpParams | SftpParams | S3Params):
            interval = original_api.polling_interval(interval if ftp is None else ftp)
            options = original_api.configured_options(config)
            ftp, policy = options.ftp, policy or options.policy
            self.ignore_patterns = options.ignore_patterns
            outbox = outbox if outbox is not None else options.outbox
            station = station if station is not None else options.station
        else:
            self.ignore_patterns = DEFAULT_IGNORE_PATTERNS
        super().__init__(name=name, daemon=True)
        self.ftp = ftp
        self.policy = policy or UploadPolicy()
        if early is not None:
            self._channels = early.take_channels()
            self._channels.results, self._channels.log_queue = results, log_queue
        else:
            self._channels = Channels(results, log_queue)
        self._early = early
        self.upload_queue_polling_interval_seconds = interval
        #: the local folder and station name `UploadHandler(helper)` maps paths with (None: not known)
        self.outbox = outbox
        self.station = station or ""
        #: bumped by the child while its board answers (the systemd watchdog reads it)
        self.heartbeat = self._channels.heartbeat
        self._stopped = False
        self._lock = threading.Lock()

    @staticmethod
    def new_queue() -> Queue[Any]:
        """A results queue that other processes may read too (from the `spawn` context).

        Any queue will do (the parent puts the results on it); a `queue.Queue` costs no semaphores.
        """
        return SPAWN.Queue()

    @property
    def results(self) -> Any:
        """Where the parent puts each `UploadResult` (None: nowhere)."""
        return self._channels.results

    @results.setter
    def results(self, queue: Any) -> None:
        self._channels.results = queue

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        early, process_obj._early = process_obj._early, None
        popen = early.hand_over(process_obj) if early is not None else None
        return popen if popen is not None else launcher()(process_obj)

    def __repr__(self) -> str:
        state = "running" if self.is_alive() else ("stopped" if self._stopped else "not running")
        return f"UploadHelper({self.ftp!r}, connections={self.policy.connections}, {state})"

    def __getstate__(self) -> dict[str, Any]:
        """What the child receives: everything but the parent's lock (and what `Channels` keeps back)."""
        state = dict(self.__dict__)
        state.update(_lock=None, _early=None)
        return state

    # --- parent side

    def start(self) -> None:
        """Start the child (and, in the parent, the thread that reads its reports)."""
        self._channels.start_reading()
        with main_module_left_out():
            super().start()
        self._channels.started()

    def submit(self, job: UploadJob) -> None:
        """Queue one job; a newer job for a path already queued replaces the older one."""
        if self._stopped:
            log.debug("not queued, the sink is stopped (the file stays in the outbox): %s", job.local_path)
            return
        self._channels.put(job)

    def backfill_queued(self) -> int:
        """Backfill jobs no worker has taken yet: ready on the sink's board, or still on their way to it."""
        return self._channels.backfill_queued()

    def stats(self) -> SinkStats:
        """Queued (primary, secondary), waiting, parked, in flight, sessions, delivered, failed."""
        return self._channels.stats()

    def finish_manifests(self, attempts: int) -> None:
        """`run --once`: no more jobs come; put every pending day's manifest up now, each tried `attempts` times at
        most. `manifests_left` answers once the child has (`pipeline.sink.manifest_round`)."""
        self._channels.send_finish_manifests(attempts)

    def manifests_left(self, timeout: float) -> dict[str, str] | None:
        """The days (day folder -> last failure) whose manifest the last round left, within `timeout` s; else None."""
        if not self._channels.manifests_settled.wait(timeout):
            return None
        return self._channels.manifests_left

    def stop(self, deadline: float | None = None) -> bool:
        """Finish transfers in flight within `deadline` s (default `policy.stop_deadline_seconds`), then exit.

        Blocks until the child has exited; returns True when it did so on its own. Queued files
        stay in the outbox. Safe to call twice, and before `start()`.
        """
        with self._lock:
            if self._stopped:
                return not self.is_alive()
            self._stopped = True
        deadline = self.policy.stop_deadline_seconds if deadline is None else max(0.0, deadline)
        started = self._popen is not None
        clean = True
        if started:
            self._channels.send_stop(deadline)
            if not self.reached_run:
                # Still importing (run --once on an empty outbox stops it at once): nothing to finish, and no
                # need to wait for its imports. Past `run`, SIGTERM is the same stop message (see `run`).
                self.terminate()
            self.join(deadline + STOP_GRACE_SECONDS)
            if self.is_alive():
                clean = False
                log.warning("the sink did not exit within its stop deadline: ending it (its files stay in the outbox)")
                self.terminate()
                self.join(5)
        self._channels.release()
        return clean

    def __enter__(self) -> UploadHelper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- child side

    @property
    def parts_journal(self) -> str | None:
        """Where the child keeps, from one run to the next, which `.part` files on the server hold the start
        of which local file: a transfer cut at the stop deadline resumes there at the next start.

        A hidden file in the outbox (never uploaded: `.*` is ignored); None when the outbox is not known.
        """
        return os.path.join(self.outbox, PARTS_JOURNAL_NAME) if self.outbox else None

    @property
    def manifests_folder(self) -> str | None:
        """Where the child journals verified deliveries for the per-day SHA256SUMS (`pipeline.sink.manifest`):
        under the outbox's state folder, which the watcher ignores. None without an outbox or with
        `checksum = "none"`; every transport (FTP, SFTP, S3) stores manifests."""
        if not self.outbox or self.policy.checksum != "sha256":
            return None
        return os.path.join(self.outbox, STATE_FOLDER, "manifests")

    @property
    def reached_run(self) -> bool:
        """Whether the child got past its start-up into `run` (a child that exits before did not start at all)."""
        popen = self._popen
        return self._channels.reached_run(exited=popen is not None and popen.poll() is not None)

    def run(self) -> None:
        """The child's main (`pipeline.sink.child.run_sink`): workers and feeders until the stop message."""
        ends = self._channels.child_ends(self.parts_journal, self.manifests_folder)
        ends.reports.put(("running", None))
        from pipeline.sink.child import run_sink  # the child's modules: not loaded in the parent

        run_sink(self.ftp, self.policy, ends)
        if multiprocessing.parent_process() is not None:
            # Everything is reported and released: the exit need not collect the heap first (10-20 ms the parent,
            # which waits for this exit, and `run --once` with it, would wait too; the command line does the same).
            gc.freeze()
