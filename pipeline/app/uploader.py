"""`Uploader`: the composition root the beemon orchestrator starts (the original API's name).

It builds the job stream from plain values, starts the sink process, subscribes the sink to the
stream, and polls the orchestrator's command queue. Disposal is the whole stop: the observer
stops, the sink finishes in-flight transfers within a deadline, and what was not sent stays in the
outbox for the next start.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from reactivex import abc
from reactivex.subject import Subject

from operators.model import Priority, UploadJob
from pipeline.app.config_sources import options_from_config
from pipeline.app.options import UploaderOptions
from pipeline.app.stats import UploadStats
from pipeline.app.transport_risks import transport_risks
from pipeline.outbox.lock import OutboxLock
from pipeline.sink.main_guard import guard_main_module
from pipeline.sink.model import Outcome, SinkGaveUp
from pipeline.sink.process import UploadHelper, UploadResult
from pipeline.sink.retry import RetryPolicy
from pipeline.stream.jobs import build_job_stream, scan_jobs

if TYPE_CHECKING:  # pyftpdlib is imported only where the embedded server runs
    from pipeline.dev.embedded_server import EmbeddedFtpServer

log = logging.getLogger("beemon.uploader")
SPAWN = multiprocessing.get_context("spawn")
#: Backfill jobs the sink may hold ready before the scan waits for it to take some. The outbox is
#: the durable queue: a job queued further ahead costs about 1 KB (parent and sink together) and
#: gains nothing, so a backlog of 100,000 files would otherwise hold some 100 MB. Jobs waiting a
#: retry are not counted, so files the server refuses never hold the rest of the backlog back.
MAX_READY_BACKFILL = 10_000


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
        self._stop_requested = self._context.Event()
        self._outbox_lock = OutboxLock(self._options.outbox)
        # Set in run(): never pickled to the child.
        self._helper: UploadHelper | None = None
        self.stats: UploadStats | None = UploadStats()

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
        return state

    # -- the orchestrator's protocol ------------------------------------------------------------

    def _handle_command(self, command: str) -> str | None:
        """Act on one command from the orchestrator; an unknown one is logged and returned as an error."""
        if command == "stop":
            self.stop()
            return None
        message = f"unknown command {command!r}: the uploader understands only 'stop'"
        log.error(message)
        return message

    def start(self) -> None:
        """Take the outbox's lock (`OutboxBusy` if another uploader holds it), then start the process with it."""
        self.lock_outbox()
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
        if self._outbox_lock.held:
            self._outbox_lock.write_pid()  # inherited from `start()`: the PID a second instance names is ours
        else:
            self._outbox_lock.acquire()
        try:
            self._run_pipelines()
        finally:
            self._outbox_lock.release()

    def _run_pipelines(self) -> None:
        pauses = RetryPolicy.of(self._options.policy).rebuild_pauses()
        while not self._stop_requested.is_set():
            with RunningPipeline(self._options, self.stats) as running:
                self._helper = running.helper
                self._serve_commands(running)
                self._helper = None
                if self._stop_requested.is_set():
                    break
                if running.start_failed:
                    raise SystemExit(1)  # the reason is logged; it would fail again
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
                command = self._command_queue.get(timeout=self._command_poll_seconds)
            except queue.Empty:
                continue
            except (EOFError, OSError):
                log.warning("the command queue closed: stopping")
                self.stop()
                return
            self._handle_command(str(command))

    def populate_secondary_queue(self) -> int:
        """Queue every ready file in the outbox as backfill (the original's startup scan); returns the count."""
        if self._helper is None:
            raise RuntimeError("populate_secondary_queue needs a running uploader (call it from run())")
        count = 0
        for job in scan_jobs(
            self._options.outbox,
            remote_root=self._options.ftp.remote_root,
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


def check_options(options: UploaderOptions) -> None:
    """Raise `SettingsError` (one line) for options that could never work, before anything starts."""
    from settings import SettingsError
    from settings.loader import ca_file_problem

    if options.ftp.secure and (problem := ca_file_problem(options.ftp.ca_file)):
        raise SettingsError(problem)
    if os.path.lexists(options.outbox) and not os.path.isdir(options.outbox):
        raise SettingsError(
            f"setting local_output_directory = {options.outbox!r} is not valid: it is a file, not a folder;"
            " point it at the station's outbox folder (settings.toml or BEEMON_LOCAL_OUTPUT_DIRECTORY)"
        )


class RunningPipeline:
    """The live parts of one run: embedded server, sink process, results pump, the subscription.

    A context manager so that every exit path (stop, error, signal) disposes in the same order.
    """

    def __init__(
        self,
        options: UploaderOptions,
        stats: UploadStats,
        *,
        on_result: Callable[[UploadResult], None] | None = None,
        watch: bool = True,
    ) -> None:
        self.options = options
        self.stats = stats
        self.on_result = on_result
        self.watch = watch
        self.server: EmbeddedFtpServer | None = None
        self.helper: UploadHelper | None = None
        self._results: Any = None
        self._released: Subject[str] = Subject()
        self._pump: threading.Thread | None = None
        self._subscription: abc.DisposableBase | None = None
        self._closing = threading.Event()
        self._stats_thread: threading.Thread | None = None
        self._metrics: Any = None
        self._stream_error: BaseException | None = None
        self._sink_gave_up: str | None = None

    def __enter__(self) -> RunningPipeline:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        options = self.options
        check_options(options)
        if options.embedded:
            self.server = _start_embedded(options)
            log.info("embedded FTP server on 127.0.0.1:%d, storing into %s", self.server.port, options.embedded_root)
            options = options.replace(ftp=replace(options.ftp, host="127.0.0.1", port=self.server.port))
            self.options = options
        for risk in transport_risks(options.ftp):
            log.warning("%s", risk)
        if options.metrics_port:  # first: a port that is taken ends the start before anything runs
            self._metrics = _serve_metrics(self.stats, options.metrics_port)
            log.info("Prometheus metrics on port %d", options.metrics_port)
        self._results = UploadHelper.new_queue()
        self.helper = UploadHelper(
            options.ftp, options.policy, results=self._results, outbox=options.outbox, station=options.station
        )
        self.helper.start()
        self.stats.sink = self.helper.stats
        self._pump = threading.Thread(target=self._pump_results, name="results-pump", daemon=True)
        self._pump.start()
        if options.stats_interval > 0:
            self._stats_thread = threading.Thread(target=self._log_stats, name="stats", daemon=True)
            self._stats_thread.start()
        if self.watch:
            stream = build_job_stream(
                options.outbox,
                remote_root=options.ftp.remote_root,
                station=options.station,
                observer=options.observer,
                polling_interval=options.polling_interval,
                debounce_seconds=options.debounce_seconds,
                ignore_patterns=options.ignore_patterns,
                backfill_order=options.backfill_order,
                orphan_csv_after_seconds=options.orphan_csv_after_seconds,
                rescan_interval=options.rescan_interval,
                released=self._released,
                backfill_may_emit=self._backfill_may_emit,
            )
            self._subscription = stream.subscribe(on_next=self.submit, on_error=self._stream_failed)
            log.info("watching %s (%s)", options.outbox, options.observer)

    def _backfill_may_emit(self) -> bool:
        """Whether the backfill scan may queue more: fewer than `MAX_READY_BACKFILL` backfill jobs are untaken."""
        helper = self.helper
        return helper is None or helper.backfill_queued() < MAX_READY_BACKFILL

    def _stream_failed(self, error: BaseException) -> None:
        log.error("the file stream failed: %s: %s", type(error).__name__, error)
        self._stream_error = error

    def failure(self) -> str | None:
        """Why this pipeline can no longer deliver (the sink died or gave up, the stream failed), or None."""
        if self._sink_gave_up is not None:
            return self._sink_gave_up
        if self.helper is not None and self.helper.exitcode is not None:
            if self.start_failed:
                return (
                    f"the sink process could not start (exit code {self.helper.exitcode}; its error is above):"
                    " a spawned process runs the orchestrator's main module again first, so that module must"
                    ' create and start the uploader only under `if __name__ == "__main__":`'
                )
            return f"the sink process ended unexpectedly (exit code {self.helper.exitcode})"
        if self._stream_error is not None:
            return f"the file stream stopped ({type(self._stream_error).__name__}: {self._stream_error})"
        return None

    @property
    def start_failed(self) -> bool:
        """The sink process raised before it reached its main (a missing `__main__` guard, an import error).

        Building the pipeline again would fail the same way, so `Uploader.run` gives up instead.
        """
        helper = self.helper
        return helper is not None and helper.exitcode == 1 and not helper.reached_run

    def submit(self, job: UploadJob) -> None:
        """Hand one job to the sink. Never raises: an exception here would end the stream's thread."""
        assert self.helper is not None
        try:
            self.stats.submitted(job)
            self.helper.submit(job)
        except Exception:
            log.exception("could not queue %s (it stays in the outbox for the next start)", job.local_path)
            return
        log.debug(
            "queued %s -> %s (%s)",
            job.local_path,
            job.remote_path,
            "live" if job.priority == Priority.LIVE else "backfill",
        )

    def _releases(self, path: str, outcome: Outcome) -> bool:
        """Whether the stream may forget the path: it is gone, or delivered and deleted.

        A delivered file still in the outbox (`delete_after_upload = false`, or a deletion that
        failed on a read-only card) stays remembered: releasing it would make every rescan upload
        it again. Only a change uploads it anew.
        """
        if outcome == Outcome.DELIVERED:
            return self.options.policy.delete_after_upload and not os.path.lexists(path)
        return outcome.final

    def _pump_results(self) -> None:
        while True:
            message = self._results.get()
            if message is None:
                return
            if isinstance(message, SinkGaveUp):
                self._sink_gave_up = message.reason
                continue
            if not isinstance(message, UploadResult):
                continue
            self.stats.finished(message.local_path, message.outcome, message.bytes)
            if self._releases(message.local_path, message.outcome):
                self._released.on_next(message.local_path)
            if self.on_result is not None:
                self.on_result(message)

    def _log_stats(self) -> None:
        while not self._closing.wait(self.options.stats_interval):
            log.info("stats: %s", self.stats.snapshot().line())

    def close(self) -> None:
        """Dispose in order: stop new jobs, let the sink finish in flight, stop the server."""
        self._closing.set()
        if self._subscription is not None:
            self._subscription.dispose()
            self._subscription = None
        if self.helper is not None:
            self.stats.sink = None
            self.helper.stop()  # policy.stop_deadline_seconds for in-flight transfers; joins, ends it past that
            self.helper = None
        if self._pump is not None and self._results is not None:
            self._results.put(None)
            self._pump.join(5)
            self._pump = None
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def _serve_metrics(stats: UploadStats, port: int) -> Any:
    """The metrics endpoint; a port that cannot be had is a settings error (one line, exit 2), not a traceback."""
    from pipeline.app.metrics import serve_metrics
    from settings import SettingsError

    try:
        return serve_metrics(stats, port)
    except OSError as error:
        raise SettingsError(
            f"setting metrics.port = {port} cannot be used: {error.strerror or error}; choose a free port,"
            " or 0 for no metrics endpoint (settings.toml or BEEMON_METRICS__PORT)"
        ) from None


def _start_embedded(options: UploaderOptions) -> EmbeddedFtpServer:
    """The embedded server on `ftp.port`, or on a free port when that one is taken (a second demo)."""
    from pipeline.dev.embedded_server import EmbeddedFtpServer

    for port in (options.ftp.port, 0):
        server = EmbeddedFtpServer(
            options.embedded_root, options.ftp.username, options.ftp.password, port=port, hash_command=True
        )
        try:
            return server.start()
        except OSError as error:
            if port == 0:
                raise
            log.warning("port %d is taken (%s): the embedded server takes a free one", port, error.strerror or error)
    raise AssertionError("unreachable")
