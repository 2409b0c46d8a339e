"""The metrics an alert is written on: last delivery time, parked files, open sessions, sink restarts,
failures by reason, the outbox's free space; and `build_info`. Read at scrape time, like `StatsCollector`.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from typing import Any

from pipeline.app.activity import Activity
from pipeline.app.disk_guard import DiskGuard
from pipeline.app.stats import UploadStats
from pipeline.app.version import VERSION


class BuildInfoCollector:
    """``beemon_uploader_build_info{version, python}`` = 1: which build each station runs."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        info = GaugeMetricFamily(
            "beemon_uploader_build_info", "The uploader's version and Python", labels=["version", "python"]
        )
        info.add_metric([VERSION, platform.python_version()], 1)
        yield info


class HealthCollector:
    """The figures of `Activity`, the sink's live counts and the disk guard."""

    def __init__(self, stats: UploadStats, activity: Activity, disk: DiskGuard) -> None:
        self._stats = stats
        self._activity = activity
        self._disk = disk

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        activity = self._activity
        last = activity.last_delivery
        yield GaugeMetricFamily(
            "beemon_uploader_last_delivery_timestamp_seconds",
            "When the last file was delivered and verified (Unix time; 0: none since start)",
            value=last.at if last else 0,
        )
        yield GaugeMetricFamily(
            "beemon_uploader_start_time_seconds", "When this uploader started (Unix time)", value=activity.started_at
        )
        sink = self._stats.sink() if self._stats.sink is not None else None
        yield GaugeMetricFamily(
            "beemon_uploader_parked_files", "Files the server refuses, retried slowly", value=len(activity.parked())
        )
        yield GaugeMetricFamily(
            "beemon_uploader_open_sessions", "FTP sessions open now", value=sink.sessions if sink else 0
        )
        yield CounterMetricFamily(
            "beemon_uploader_sink_restarts",
            "Times the sink process was rebuilt after it died",
            value=activity.sink_restarts,
        )
        failures = CounterMetricFamily(
            "beemon_uploader_failures", "Failed upload attempts by reason", labels=["reason"]
        )
        for reason, count in sorted(activity.failures().items()):
            failures.add_metric([reason], count)
        yield failures
        space = self._disk.last
        if space is not None:
            yield GaugeMetricFamily(
                "beemon_uploader_outbox_free_bytes", "Free space on the outbox's file system", value=space.free_bytes
            )
            yield GaugeMetricFamily(
                "beemon_uploader_outbox_free_ratio",
                "Free share of the outbox's file system (0 to 1)",
                value=space.free_percent / 100,
            )
        yield GaugeMetricFamily(
            "beemon_uploader_outbox_disk_low",
            "1 while the outbox's free space is below watch.min_free_percent",
            value=1 if self._disk.low else 0,
        )
