"""`Uploader`: the composition root the beemon orchestrator starts (the original API's name).

It builds the job stream from plain values, starts the sink process, subscribes the sink to the
stream, and polls the orchestrator's command queue. Disposal is the whole stop: the observer
stops, the sink finishes in-flight transfers within a deadline, and what was not sent stays in the
outbox for the next start.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.context import SpawnProcess
from typing import Any, Protocol

from reactivex import abc
from reactivex.subject import Subject

from operators.model import Priority, UploadJob
from pipeline.embedded_server import EmbeddedFtpServer
from pipeline.job_stream import build_job_stream, scan_jobs
from pipeline.options import UploaderOptions, options_from_settings
from pipeline.stats import FINAL_OUTCOMES, UploadStats
from pipeline.upload_helper import UploadHelper, UploadResult

log = logging.getLogger("beemon.uploader")
SPAWN = multiprocessing.get_context("spawn")


class CommandQueue(Protocol):
    def get(self, block: bool = True, timeout: float | None = None) -> Any: ...


class Uploader(SpawnProcess):
    """Watches the outbox and uploads every finished file; stops on the command ``"stop"``.

    `config` is a settings object (as `settings.build_settings` returns), an `UploaderOptions`, or
    None for the settings of the current environment. It is read here, in the parent, so bad
    settings fail before a process starts; the child receives only plain values.
    """

    def __init__(
        self,
        command_queue: CommandQueue,
        config: Any | None = None,
        *,
        command_poll_seconds: float = 0.2,
    ) -> None:
        super().__init__(name="beemon-uploader", daemon=False)
        if config is None:
            from settings import build_settings

            config = build_settings()
        self._options = config if isinstance(config, UploaderOptions) else options_from_settings(config)
        self._command_queue = command_queue
        self._command_poll_seconds = command_poll_seconds
        self._stop_requested = SPAWN.Event()
        # Set in run(): never pickled to the child.
        self._helper: UploadHelper | None = None
        self._subscription: abc.DisposableBase | None = None
        self.stats: UploadStats | None = UploadStats()

    @property
    def options(self) -> UploaderOptions:
        return self._options

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_helper"] = None
        state["_subscription"] = None
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

    def stop(self) -> None:
        """Ask `run` to return: it disposes the pipeline and lets the sink finish what is in flight."""
        self._stop_requested.set()

    def run(self) -> None:
        """Build, subscribe, and poll the command queue until ``"stop"`` (or `stop()`)."""
        if not logging.getLogger().handlers:
            from pipeline.logs import configure_logging

            configure_logging()
        if self.stats is None:
            self.stats = UploadStats()
        with RunningPipeline(self._options, self.stats) as running:
            self._helper = running.helper
            while not self._stop_requested.is_set():
                try:
                    command = self._command_queue.get(timeout=self._command_poll_seconds)
                except queue.Empty:
                    continue
                except (EOFError, OSError):
                    log.warning("the command queue closed: stopping")
                    break
                self._handle_command(str(command))
        self._helper = None

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
        ):
            self._helper.submit(job)
            count += 1
        return count


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
        if options.embedded:
            self.server = _start_embedded(options)
            log.info("embedded FTP server on 127.0.0.1:%d, storing into %s", self.server.port, options.embedded_root)
            options = options.replace(ftp=replace(options.ftp, host="127.0.0.1", port=self.server.port))
            self.options = options
        self._results = UploadHelper.new_queue()
        self.helper = UploadHelper(options.ftp, options.policy, results=self._results)
        self.helper.start()
        self.stats.sink = self.helper.stats
        self._pump = threading.Thread(target=self._pump_results, name="results-pump", daemon=True)
        self._pump.start()
        if options.stats_interval > 0:
            self._stats_thread = threading.Thread(target=self._log_stats, name="stats", daemon=True)
            self._stats_thread.start()
        if options.metrics_port:
            from pipeline.metrics import serve_metrics

            self._metrics = serve_metrics(self.stats, options.metrics_port)
            log.info("Prometheus metrics on port %d", options.metrics_port)
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
                rescan_interval=options.rescan_interval,
                released=self._released,
            )
            self._subscription = stream.subscribe(
                on_next=self.submit,
                on_error=lambda error: log.error("the file stream failed: %s", error),
            )
            log.info("watching %s (%s)", options.outbox, options.observer)

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

    def _releases(self, outcome: str) -> bool:
        """Whether the stream may forget the path: it is gone, or delivered and deleted.

        With `delete_after_upload = false` a delivered file stays in the outbox; releasing it would
        make every rescan upload it again. It stays remembered, so only a change uploads it anew.
        """
        if outcome == "delivered":
            return self.options.policy.delete_after_upload
        return outcome in FINAL_OUTCOMES

    def _pump_results(self) -> None:
        while True:
            message = self._results.get()
            if message is None:
                return
            if not isinstance(message, UploadResult):
                continue
            self.stats.finished(message.local_path, message.outcome, message.bytes)
            if self._releases(message.outcome):
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


def _start_embedded(options: UploaderOptions) -> EmbeddedFtpServer:
    """The embedded server on `ftp.port`, or on a free port when that one is taken (a second demo)."""
    for port in (options.ftp.port, 0):
        server = EmbeddedFtpServer(options.embedded_root, options.ftp.username, options.ftp.password, port=port)
        try:
            return server.start()
        except OSError as error:
            if port == 0:
                raise
            log.warning("port %d is taken (%s): the embedded server takes a free one", port, error.strerror or error)
    raise AssertionError("unreachable")
