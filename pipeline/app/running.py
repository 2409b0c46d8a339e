"""`RunningPipeline`: the live parts of one run, started and disposed in one order.

The embedded server (when named), the sink process (its results handled as they arrive), the statistics line, the
metrics endpoint and the stream's subscription. `Uploader.run`, `run --once` and `demo` each hold
one; disposal is the whole stop: no new jobs, in-flight transfers finish within the deadline, and
what was not sent stays in the outbox for the next start. The stream's modules (reactivex,
watchdog) are imported only by a pipeline that watches: `run --once` scans without them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from operators.model import Priority, UploadJob
from pipeline.app.liveness import Beat
from pipeline.app.options import UploaderOptions
from pipeline.app.stats import DELIVERED, FINAL, UploadStats
from pipeline.app.transport_risks import transport_risks
from pipeline.sink.model import Outcome, SinkGaveUp
from pipeline.sink.process import UploadHelper, UploadResult

if TYPE_CHECKING:  # pyftpdlib is imported only where the embedded server runs, the stream's libraries where it watches
    from reactivex import abc

    from pipeline.dev.embedded_server import EmbeddedFtpServer
    from pipeline.sink.prestart import EarlySink
    from pipeline.stream.monotonic import MonotonicEventLoopScheduler
    from pipeline.stream.released import Released

log = logging.getLogger("beemon.uploader")
#: Backfill jobs the sink may hold ready before the scan waits for it to take some. The outbox is
#: the durable queue: a job queued further ahead costs about 1 KB (parent and sink together) and
#: gains nothing, so a backlog of 100,000 files would otherwise hold some 100 MB. Jobs waiting a
#: retry are not counted, so files the server refuses never hold the rest of the backlog back.
MAX_READY_BACKFILL = 10_000


def check_options(options: UploaderOptions) -> None:
    """Raise `SettingsError` (one line) for options that could never work, before anything starts."""
    from settings import SettingsError, ca_file_problem

    if options.kind == "ftp" and options.ftp.secure and (problem := ca_file_problem(options.ftp.ca_file)):
        raise SettingsError(problem)
    if os.path.lexists(options.outbox) and not os.path.isdir(options.outbox):
        raise SettingsError(
            f"setting local_output_directory = {options.outbox!r} is not valid: it is a file, not a folder;"
            " point it at the station's outbox folder (settings.toml or BEEMON_LOCAL_OUTPUT_DIRECTORY)"
        )


class _HandledAtOnce:
    """The sink's results queue, as far as it knows: each result is handled in the thread that reads the sink's
    reports, when it is put. (A queue and a pump thread cost a hand-off per file, a notify, a wake and a turn at
    the GIL, for handling that only takes locks: the statistics, the stream's "released" subject, `on_result`.)"""

    def __init__(self, handle: Callable[[Any, bool], None]) -> None:
        self._handle = handle

    def put(self, message: Any) -> None:
        self._pass(message, False)

    def put_removed(self, result: UploadResult) -> None:
        """A delivered result whose file the sink removed from the outbox (`pipeline.sink.channels`)."""
        self._pass(result, True)

    def _pass(self, message: Any, removed: bool) -> None:
        try:
            self._handle(message, removed)
        except Exception:  # the reports thread must go on passing the rest on
            log.exception("handling a result of the sink failed")


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
        collectors: tuple[Any, ...] = (),
        early: EarlySink | None = None,
    ) -> None:
        self.options = options
        self.stats = stats
        self.on_result = on_result
        self.watch = watch
        self.collectors = collectors  # more for the metrics endpoint (`pipeline.app.health_metrics`)
        self.early = early  # the sink's process, started before the settings were read (`pipeline.sink.prestart`)
        self.server: EmbeddedFtpServer | None = None
        self.helper: UploadHelper | None = None
        self._released: Released | None = None  # paths the stream may forget (when it watches)
        self._subscription: abc.DisposableBase | None = None
        self._closing = threading.Event()
        self._stats_thread: threading.Thread | None = None
        self._metrics: Any = None
        self._stream_error: BaseException | None = None
        self._sink_gave_up: str | None = None
        #: bumped every second on the stream's event loop (the systemd watchdog reads it)
        self.stream_beat = Beat()
        self._loop: MonotonicEventLoopScheduler | None = None

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
        for risk in transport_risks(options.ftp) if options.kind == "ftp" else []:
            log.warning("%s", risk)
        if options.metrics_port:  # first: a port that is taken ends the start before anything runs
            self._metrics = _serve_metrics(self.stats, options.metrics_port, self.collectors)
            log.info("Prometheus metrics on port %d", options.metrics_port)
        self.helper = UploadHelper(
            options.target,
            options.policy,
            results=_HandledAtOnce(self._handle_result),
            outbox=options.outbox,
            station=options.station,
            early=self.early,
        )
        self.early = None
        self.helper.start()
        self.stats.sink = self.helper.stats
        if options.stats_interval > 0:
            self._stats_thread = threading.Thread(target=self._log_stats, name="stats", daemon=True)
            self._stats_thread.start()
        if self.watch:
            self._watch(options)

    def _watch(self, options: UploaderOptions) -> None:
        """Subscribe the job stream: the watcher, then the backfill scan, each job handed to `submit`."""
        from pipeline.stream.jobs import build_job_stream
        from pipeline.stream.monotonic import MonotonicEventLoopScheduler
        from pipeline.stream.released import Released

        self._released = Released()
        self._loop = MonotonicEventLoopScheduler()
        self._loop.schedule_periodic(1.0, self.stream_beat.beat)
        stream = build_job_stream(
            options.outbox,
            remote_root=options.target.remote_root,
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
            scheduler=self._loop,
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
    def ready(self) -> bool:
        """The outbox is watched and the sink process has started (what systemd's READY=1 says)."""
        return self._subscription is not None and self.helper is not None and self.helper.reached_run

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

    def _releases(self, path: str, outcome: Outcome, removed: bool) -> bool:
        """Whether the stream may forget the path: it is gone, or delivered and deleted.

        A delivered file still in the outbox (`delete_after_upload = false`, or a deletion that
        failed on a read-only card) stays remembered: releasing it would make every rescan upload
        it again. Only a change uploads it anew. The usual delivery comes `removed` (the sink
        deleted the file itself): that needs no look at the disk, once per delivered file.
        """
        if outcome == DELIVERED:
            return removed or (self.options.policy.delete_after_upload and not _lexists(path))
        return outcome in FINAL

    def _handle_result(self, message: Any, removed: bool = False) -> None:
        """One result (or `SinkGaveUp`) of the sink, in the thread that reads its reports; `removed`: see
        `_HandledAtOnce.put_removed`."""
        if isinstance(message, SinkGaveUp):
            self._sink_gave_up = message.reason
            return
        if not isinstance(message, UploadResult):
            return
        self.stats.finished(message.local_path, message.outcome, message.bytes)
        if self._released is not None and self._releases(message.local_path, message.outcome, removed):
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
        if self._loop is not None:
            self._loop.dispose()
            self._loop = None
        if self.helper is not None:
            self.stats.sink = None
            self.helper.stop()  # policy.stop_deadline_seconds for in-flight transfers; joins, ends it past that
            self.helper = None
        if self._metrics is not None:
            self._metrics.shutdown()
            self._metrics = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def _lexists(path: str) -> bool:
    """`os.path.lexists` (the entry itself: a symlink is not followed), asked once per delivered file: `os.access`
    answers a file that is gone with False, where `lexists` raises and catches a `FileNotFoundError` (half its cost)."""
    try:
        return os.access(path, os.F_OK, follow_symlinks=False)
    except (ValueError, NotImplementedError):  # a NUL in the path (lexists: False); a platform without the flag
        return os.path.lexists(path)


def _serve_metrics(stats: UploadStats, port: int, collectors: tuple[Any, ...] = ()) -> Any:
    """The metrics endpoint; a port that cannot be had is a settings error (one line, exit 2), not a traceback."""
    from pipeline.app.metrics import serve_metrics
    from settings import SettingsError

    try:
        return serve_metrics(stats, port, extra=collectors)
    except OSError as error:
        raise SettingsError(
            f"setting metrics.port = {port} cannot be used: {error.strerror or error}; choose a free port,"
            " or 0 for no metrics endpoint (settings.toml or BEEMON_METRICS__PORT)"
        ) from None


def _start_embedded(options: UploaderOptions) -> EmbeddedFtpServer:
    from pipeline.dev.embedded_server import start_embedded_server

    return start_embedded_server(options.embedded_root, options.ftp.username, options.ftp.password, options.ftp.port)
