"""`Uploader`: the composition root the beemon orchestrator starts (the original API's name).

It reads the configuration in the parent, takes the outbox's lock, and in its process runs a
`RunningPipeline` (pipeline.app.running: the stream, the sink process and what serves them),
polling the orchestrator's command queue, and building the pipeline again when it broke.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from pipeline.app.activity import Activity
from pipeline.app.config_sources import options_from_config
from pipeline.app.health_metrics import HealthCollector
from pipeline.app.options import UploaderOptions
from pipeline.app.running import RunningPipeline, check_options
from pipeline.app.stats import UploadStats
from pipeline.outbox.lock import OutboxLock
from pipeline.sink.main_guard import guard_main_module
from pipeline.sink.process import SPAWN, UploadHelper
from pipeline.sink.retry import RetryPolicy
from pipeline.stream.scan_jobs import scan_jobs

log = logging.getLogger("beemon.uploader")


class CommandQueue(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


class Uploader(multiprocessing.Process):
    """Watches the outbox and uploads every finished file; stops on the command ``"stop"``.

    `config` is what the orchestrator holds: a `configparser.ConfigParser`, any object with a
    ConfigParser-like `get(section, option)`, a mapping of sections, the path of a legacy
    ``beemon-config.ini``, a settings object (as `settings.build_settings` returns), an
    `UploaderOptions`, or None: then the first ``beemon-config.ini`` found in the working
    directory, the main script's folder or the site folder, else the site settings and
    ``BEEMON_*`` variables (see `pipeline.app.config_sources`). It is read here, in the parent, so a
    bad or serverless configuration raises `ValueError` before a process starts; the child
    receives only plain values.

    The process starts with the command queue's own start method: a plain
    ``multiprocessing.Queue()`` (fork on Linux) works as it did with the original, and a spawn
    context's queue gets a spawned process. Without a multiprocessing queue it spawns.

    Only one uploader may work an outbox: `start()` (and `run()` when called in-process) takes
    the outbox's lock first and raises `OutboxBusy`, naming the holder's PID, when another
    uploader has it. The started process holds the lock for its lifetime; the caller's copy is
    closed once it runs.
    """

    def __init__(
        self,
        command_queue: CommandQueue,
        config: Any | None = None,
        *,
        command_poll_seconds: float = 1.0,
    ) -> None:
        guard_main_module("Uploader(...)")
        super().__init__(name="beemon-uploader", daemon=False)
        self._options = options_from_config(config)
        if self._options.embedded:
            log.warning(
                'ftp.host = "embedded": files go to the built-in test server under %s, not to a real server',
                self._options.embedded_root,
            )
        check_options(self._options)
        self._command_queue = command_queue
        self._command_poll_seconds = command_poll_seconds
        self._context: Any = _context_of(command_queue)
        #: a threading.Event while this object runs in-process (`run()`, the CLI); `start()` makes it a
        #: multiprocessing one, which the orchestrator's process sets: only then a named semaphore
        self._stop_requested: Any = threading.Event()
        self._outbox_lock = OutboxLock(self._options.outbox)
        # Set in run(): never pickled to the child.
        self._helper: UploadHelper | None = None
        self.stats: UploadStats | None = UploadStats()
        self.activity = Activity()
        #: the pipeline running now (None while one is built or torn down), for the service monitor
        self.pipeline: RunningPipeline | None = None
        #: re-reads the settings on "reload" (SIGHUP); None: this uploader cannot reload
        self.reload_options: Callable[[], UploaderOptions] | None = None
        self._reload_requested = False
        #: commands taken from the queue while another was handled (`stop_pending`), served next
        self._deferred: deque[Any] = deque()
        self._monitor: Any = None

    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return process_obj._context.Process._Popen(process_obj)

    @property
    def options(self) -> UploaderOptions:
        return self._options

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_helper"] = None
        state["_context"] = None
        state["stats"] = None  # made anew in the child: it holds a lock
        state["activity"] = None
        state["reload_options"] = None
        state["_deferred"] = deque()
        return state

    # -- the orchestrator's protocol ------------------------------------------------------------

    def _handle_command(self, command: str) -> str | None:
        """Act on one command from the orchestrator; an unknown one is logged and returned as an error."""
        if command == "stop":
            self.stop()
            return None
        if command == "reload":
            self._reload()
            return None
        message = f"unknown command {command!r}: the uploader understands only 'stop' and 'reload'"
        log.error(message)
        return message

    def start(self) -> None:
        """Take the outbox's lock (`OutboxBusy` if another uploader holds it), then start the process with it."""
        self.lock_outbox()
        requested, self._stop_requested = self._stop_requested, self._context.Event()
        if requested.is_set():
            self._stop_requested.set()
        try:
            super().start()
        finally:
            self._outbox_lock.release()  # the child holds its own copy of the lock from here on

    def lock_outbox(self) -> None:
        """Take the outbox's lock now (idempotent); `OutboxBusy`, naming the holder's PID, if another has it."""
        self._outbox_lock.acquire()

    def stop(self) -> None:
        """Ask `run` to return: it disposes the pipeline and lets the sink finish what is in flight."""
        self._stop_requested.set()

    def stop_pending(self) -> bool:
        """Whether a stop came while a command is handled (a reload waiting on its settings reader): `stop()`
        was called, or ``"stop"`` waits on the command queue (taken and acted on; a closed queue is a stop
        too, as in `_serve_commands`). Other commands found before it keep their turn."""
        while not self._stop_requested.is_set():
            try:
                command = self._command_queue.get(block=False)
            except queue.Empty:
                return False
            except (EOFError, OSError):
                log.warning("the command queue closed: stopping")
                self.stop()
                break
            if str(command) == "stop":
                self.stop()
                break
            self._deferred.append(command)
        return True

    def _reload(self) -> None:
        """Re-read the settings; if they load, rebuild the pipeline with them (in-flight jobs finish first)."""
        from pipeline.app.reload import reloaded_options

        new = reloaded_options(self.reload_options, self._options, self._stop_requested.is_set)
        if new is None:
            return
        if self._monitor is not None:
            self._monitor.reloading()
        self.activity.reloaded()
        self._options = new
        self._reload_requested = True

    def run(self) -> None:
        """Build, subscribe, and poll the command queue until ``"stop"`` (or `stop()`).

        A sink process that dies (killed, out of memory) is noticed within a poll and the pipeline
        is built again, after a growing pause; the files it held are still in the outbox.
        """
        if not logging.getLogger().handlers:
            from pipeline.app.logs import configure_logging

            configure_logging()
        if self.stats is None:
            self.stats = UploadStats()
        if self.activity is None:
            self.activity = Activity()
        if self._outbox_lock.held:
            self._outbox_lock.write_pid()  # inherited from `start()`: the PID a second instance names is ours
        else:
            self._outbox_lock.acquire()
        from pipeline.app.service import ServiceMonitor

        self._monitor = ServiceMonitor(self).start()
        try:
            self._run_pipelines()
        finally:
            self._monitor.stop()
            self._outbox_lock.release()

    def _run_pipelines(self) -> None:
        pauses = RetryPolicy.of(self._options.policy).rebuild_pauses()
        fruitless = 0
        while not self._stop_requested.is_set():
            delivered_before = self.stats.delivered
            health = HealthCollector(self.stats, self.activity, self._monitor.disk)
            with RunningPipeline(
                self._options, self.stats, on_result=self.activity.record, collectors=(health,)
            ) as running:
                self._helper, self.pipeline = running.helper, running
                self._serve_commands(running)
                reason = running.failure()
                self._helper = self.pipeline = None
                if self._stop_requested.is_set():
                    break
                if running.start_failed:
                    raise SystemExit(1)  # the reason is logged; it would fail again
            if self._reload_requested:
                self._reload_requested = False
                pauses = RetryPolicy.of(self._options.policy).rebuild_pauses()
                log.info("settings reloaded: the pipeline starts again with them")
                continue
            fruitless = fruitless + 1 if self.stats.delivered == delivered_before else 1
            if RetryPolicy.gives_up_rebuilding(fruitless):
                log.error(
                    "the pipeline failed %d times in a row without delivering a file (the last: %s): exiting so"
                    " that the supervisor can act; unsent files stay in the outbox",
                    fruitless,
                    reason,
                )
                raise SystemExit(1)
            self.activity.sink_restarted()
            pause = next(pauses)
            log.error("restarting the pipeline in %.0f s (unsent files stay in the outbox)", pause)
            if self._stop_requested.wait(pause):
                break

    def _serve_commands(self, running: RunningPipeline) -> None:
        """Poll the command queue until stop, or until the pipeline broke (`running.failure`)."""
        while not self._stop_requested.is_set():
            if running.failure() is not None:
                log.error("%s", running.failure())
                return
            try:
                command = (
                    self._deferred.popleft()
                    if self._deferred
                    else self._command_queue.get(timeout=self._command_poll_seconds)
                )
            except queue.Empty:
                continue
            except (EOFError, OSError):
                log.warning("the command queue closed: stopping")
                self.stop()
                return
            self._handle_command(str(command))
            if self._reload_requested:
                return

    def populate_secondary_queue(self) -> int:
        """Queue every ready file in the outbox as backfill (the original's startup scan); returns the count."""
        if self._helper is None:
            raise RuntimeError("populate_secondary_queue needs a running uploader (call it from run())")
        count = 0
        for job in scan_jobs(
            self._options.outbox,
            remote_root=self._options.target.remote_root,
            station=self._options.station,
            ignore_patterns=self._options.ignore_patterns,
            backfill_order=self._options.backfill_order,
            min_age_seconds=self._options.debounce_seconds,
            orphan_csv_after_seconds=self._options.orphan_csv_after_seconds,
        ):
            self._helper.submit(job)
            count += 1
        return count


def _context_of(command_queue: CommandQueue) -> Any:
    """The start method the queue can travel with: a fork context's locks cannot be pickled to a spawned child.

    multiprocessing marks such locks (`SemLock._is_fork_ctx`); anything else (a spawn context's
    queue, a `queue.Queue` for in-process use) goes with spawn, the safe default for a parent
    with threads.
    """
    lock = getattr(command_queue, "_rlock", None)
    if getattr(lock, "_is_fork_ctx", False):
        return multiprocessing.get_context("fork")
    return SPAWN
