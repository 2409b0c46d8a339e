"""The Prometheus endpoint (`metrics.port`): the statistics line's figures, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from pipeline.app.stats import UploadStats


class StatsCollector:
    """A custom collector: every scrape takes one snapshot, so the figures agree with each other."""

    def __init__(self, stats: UploadStats) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._stats.snapshot()
        queued = GaugeMetricFamily("beemon_uploader_queued_files", "Files waiting for upload", labels=["queue"])
        queued.add_metric(["primary"], snap.queued_primary)
        queued.add_metric(["secondary"], snap.queued_secondary)
        yield queued
        yield GaugeMetricFamily("beemon_uploader_in_flight_files", "Files being uploaded", value=snap.in_flight)
        yield CounterMetricFamily(
            "beemon_uploader_delivered_files", "Files delivered and verified", value=snap.delivered
        )
        yield CounterMetricFamily("beemon_uploader_failed_attempts", "Upload attempts that failed", value=snap.failed)
        checked = CounterMetricFamily(
            "beemon_uploader_verified_files", "Deliveries verified on the server, by check", labels=["by"]
        )
        checked.add_metric(["hash"], snap.verified_hash)
        checked.add_metric(["size"], snap.verified_size)
        yield checked
        yield CounterMetricFamily(
            "beemon_uploader_hash_mismatches",
            "Delivered copies the server hashed differently from the bytes sent (sent again)",
            value=snap.hash_mismatches,
        )
        yield CounterMetricFamily("beemon_uploader_delivered_bytes", "Bytes delivered", value=snap.bytes_delivered)
        yield GaugeMetricFamily(
            "beemon_uploader_rate_bytes_per_second",
            "Delivery rate over the last minute",
            value=snap.rate_bytes_per_second,
        )
        yield GaugeMetricFamily(
            "beemon_uploader_oldest_waiting_seconds",
            "Age of the oldest file waiting for upload",
            value=snap.oldest_waiting_seconds,
        )


def serve_metrics(stats: UploadStats, port: int, address: str = "0.0.0.0", *, extra: Sequence[Any] = ()) -> Any:
    """Start the endpoint on its own registry; returns the server (call `.shutdown()` to stop it).

    Besides the statistics: `build_info`, the standard `process_*`, `python_*` and `python_gc_*`
    series, and the `extra` collectors (`pipeline.app.health_metrics`).
    """
    from prometheus_client import (
        GC_COLLECTOR,
        PLATFORM_COLLECTOR,
        PROCESS_COLLECTOR,
        CollectorRegistry,
        start_http_server,
    )

    from pipeline.app.health_metrics import BuildInfoCollector

    registry = CollectorRegistry()
    registry.register(StatsCollector(stats))
    for collector in (BuildInfoCollector(), PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR, *extra):
        registry.register(collector)
    server, _thread = start_http_server(port, addr=address, registry=registry)
    return server
