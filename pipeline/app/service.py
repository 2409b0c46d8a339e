"""The daemon's housekeeping thread: systemd readiness and watchdog, the status file, the disk guard.

Started by `Uploader.run` for as long as it runs, across pipeline rebuilds (a sink restart, a
reload). Every half second it looks at the current pipeline:

- ``READY=1`` once the outbox is watched and the sink process has started (again after a reload);
- ``WATCHDOG=1`` every half ``WatchdogSec``, but only while the stream's event loop and the sink
  process are alive and beating (`pipeline.app.liveness`): a hung uploader stops the pings, and
  systemd restarts it;
- at each statistics tick, the status file and ``STATUS=`` with the statistics line;
- the outbox's free space against ``watch.min_free_percent``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from pipeline.app.disk_guard import DiskGuard
from pipeline.app.liveness import STALE_AFTER_SECONDS, Progress
from pipeline.app.notify import SystemdNotifier, watchdog_interval
from pipeline.app.status import status_document, write_status

log = logging.getLogger("beemon.service")
TICK_SECONDS = 0.5
#: Status file and STATUS= line cadence when the statistics line is off.
DEFAULT_STATUS_SECONDS = 30.0
#: The free space is read at most this often.
DISK_CHECK_SECONDS = 10.0


class ServiceMonitor:
    """Watches `uploader` (its `options`, `pipeline`, `stats`, `activity`, `stop_requested`) from a thread."""

    def __init__(self, uploader: Any, notifier: SystemdNotifier | None = None) -> None:
        self._uploader = uploader
        self._notifier = notifier if notifier is not None else SystemdNotifier.from_environment()
        self._ping_every = watchdog_interval() if self._notifier is not None else None
        #: half the watchdog period (2.5 to 10 s): beats come every second, a busy Pi may delay one
        self._stale_after = min(max(self._ping_every or STALE_AFTER_SECONDS, 2.5), 10.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="service-monitor", daemon=True)
        self._ready_sent = False
        self._pipeline: Any = None
        self._progress: tuple[Progress, Progress] | None = None
        self._unhealthy: str | None = None
        self._status_failed = False
        options = uploader.options
        self.disk = DiskGuard(options.outbox, options.min_free_percent)

    def start(self) -> ServiceMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the thread; systemd hears STOPPING=1."""
        self._stop.set()
        self._thread.join(5)
        if self._notifier is not None:
            self._notifier.stopping()
            self._notifier.close()

    def reloading(self) -> None:
        """A reload begins: systemd hears RELOADING=1, and READY=1 again once the new pipeline runs."""
        self._ready_sent = False
        if self._notifier is not None:
            self._notifier.reloading()

    # -- the loop

    def _loop(self) -> None:
        next_ping = next_status = next_disk = 0.0
        while not self._stop.wait(TICK_SECONDS):
            try:
                now = time.monotonic()
                pipeline = self._uploader.pipeline
                if pipeline is not self._pipeline:
                    self._watch(pipeline)
                if now >= next_disk:
                    self.disk.min_free_percent = self._uploader.options.min_free_percent
                    self.disk.check()
                    next_disk = now + min(DISK_CHECK_SECONDS, self._status_interval())
                if pipeline is not None and pipeline.ready and not self._ready_sent and self._notifier is not None:
                    self._ready_sent = self._notifier.ready(self._line())
                    log.debug("told systemd: ready")
                if self._ping_every is not None and now >= next_ping:
                    next_ping = now + self._ping_every
                    self._feed_watchdog(pipeline)
                if now >= next_status:
                    next_status = now + self._status_interval()
                    self._write_status(pipeline)
            except Exception:  # the monitor must outlive any one bad tick
                log.exception("the service monitor's tick failed")

    def _status_interval(self) -> float:
        return self._uploader.options.stats_interval or DEFAULT_STATUS_SECONDS

    def _watch(self, pipeline: Any) -> None:
        """A new pipeline (or none): watch its stream's beat and its sink's heartbeat afresh."""
        self._pipeline = pipeline
        self._progress = None
        if pipeline is not None and pipeline.helper is not None:
            self._progress = (
                Progress(pipeline.stream_beat.beats, self._stale_after),
                Progress(pipeline.helper.heartbeat.beats, self._stale_after),
            )

    def health(self, pipeline: Any) -> str | None:
        """Why the uploader is not healthy now, or None when it is."""
        if pipeline is None or self._progress is None or pipeline.helper is None:
            return "no pipeline runs (it is being rebuilt)"
        if not pipeline.helper.is_alive():
            return "the sink process is gone"
        stream, sink = self._progress
        if stream.stale():
            return f"the file stream's event loop made no progress for {stream.quiet_for():.0f} s"
        if sink.stale():
            return f"the sink process made no progress for {sink.quiet_for():.0f} s"
        return None

    def _feed_watchdog(self, pipeline: Any) -> None:
        assert self._notifier is not None
        problem = self.health(pipeline)
        if problem is None:
            if self._unhealthy is not None:
                log.info("healthy again: pinging the systemd watchdog")
            self._notifier.watchdog()
        elif problem != self._unhealthy:
            log.warning("not pinging the systemd watchdog: %s", problem)
        self._unhealthy = problem

    def _line(self) -> str:
        return self._uploader.stats.snapshot().line()

    def _write_status(self, pipeline: Any) -> None:
        uploader = self._uploader
        sink = None
        if pipeline is not None and pipeline.helper is not None:
            with contextlib.suppress(Exception):
                sink = pipeline.helper.stats()
        document = status_document(
            outbox=uploader.options.outbox,
            station=uploader.options.station,
            interval=self._status_interval(),
            stats=uploader.stats,
            activity=uploader.activity,
            disk=self.disk,
            sink=sink,
        )
        try:
            write_status(uploader.options.outbox, document)
            self._status_failed = False
        except OSError as error:
            if not self._status_failed:
                log.warning("cannot write the status file (beemon-uploader status will not see this run): %s", error)
            self._status_failed = True
        if self._notifier is not None and self._ready_sent:
            self._notifier.status(self._line())
