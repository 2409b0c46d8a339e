"""The metrics an alert is written on, served by the real endpoint; the Grafana dashboard asks only for those."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from types import SimpleNamespace

from pipeline.app.activity import Activity, failure_reason
from pipeline.app.disk_guard import DiskGuard, FreeSpace
from pipeline.app.health_metrics import HealthCollector
from pipeline.app.metrics import serve_metrics
from pipeline.app.stats import UploadStats
from pipeline.app.version import VERSION
from pipeline.sink.model import Outcome, SinkStats

DASHBOARD = Path(__file__).parent.parent / "deploy" / "grafana-dashboard.json"


def _scrape(activity: Activity, disk: DiskGuard) -> dict[str, list[str]]:
    """Series name -> the sample lines served for it."""
    stats = UploadStats()
    stats.sink = lambda: SinkStats(queued_primary=1, queued_secondary=2, waiting=0, in_flight=1, sessions=3)
    server = serve_metrics(stats, 0, "127.0.0.1", extra=[HealthCollector(stats, activity, disk)])
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    series: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series.setdefault(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0), []).append(line)
    return series


def _activity() -> Activity:
    activity = Activity()
    for outcome, reply in (
        (Outcome.DELIVERED, "226 ok"),
        (Outcome.PARKED, "STOR: 550 denied"),
        (Outcome.RETRY, "timed out"),
    ):
        activity.record(SimpleNamespace(local_path=f"/o/{outcome}", remote_path="/r", reply=reply, outcome=outcome))
    activity.sink_restarted()
    return activity


def test_alert_series_are_served():
    disk = DiskGuard("/", 100.0, measure=lambda _: FreeSpace(10, 100))
    disk.check()
    series = _scrape(_activity(), disk)
    assert float(series["beemon_uploader_last_delivery_timestamp_seconds"][0].split()[-1]) > 1e9
    assert series["beemon_uploader_parked_files"] == ["beemon_uploader_parked_files 1.0"]
    assert series["beemon_uploader_open_sessions"] == ["beemon_uploader_open_sessions 3.0"]
    assert series["beemon_uploader_sink_restarts_total"] == ["beemon_uploader_sink_restarts_total 1.0"]
    assert sorted(series["beemon_uploader_failures_total"]) == [
        'beemon_uploader_failures_total{reason="ftp_550"} 1.0',
        'beemon_uploader_failures_total{reason="timeout"} 1.0',
    ]
    assert series["beemon_uploader_outbox_free_ratio"] == ["beemon_uploader_outbox_free_ratio 0.1"]
    assert series["beemon_uploader_outbox_disk_low"] == ["beemon_uploader_outbox_disk_low 1.0"]
    assert f'version="{VERSION}"' in series["beemon_uploader_build_info"][0]
    assert "process_resident_memory_bytes" in series and "python_gc_objects_collected_total" in series


def test_every_dashboard_query_names_a_served_series():
    disk = DiskGuard("/", 10.0)
    disk.check()
    served = set(_scrape(_activity(), disk))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for row in dashboard["panels"] for t in row.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    assert len(exprs) >= 10
    for expr in exprs:
        names = re.findall(r"\b(?:beemon_uploader|process|python)_[a-z_]+\b", expr)
        assert names, expr
        assert set(names) <= served, (expr, set(names) - served)


def test_disk_guard_warns_once_per_crossing(caplog):
    readings = iter([50, 5, 4, 3, 20, 6, 6])
    guard = DiskGuard("/outbox", 10.0, measure=lambda _: FreeSpace(next(readings), 100))
    with caplog.at_level("INFO", logger="beemon.disk"):
        lows = [(guard.check(), guard.low)[1] for _ in range(7)]
    assert lows == [False, True, True, True, False, True, True]
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 2 and "5.0 % free" in warnings[0].getMessage()


def test_failure_reasons_are_few_and_named():
    assert failure_reason(Outcome.PARKED, "STOR: 550 Permission denied") == "ftp_550"
    assert failure_reason(Outcome.RETRY, "421 Too many connections") == "ftp_421"
    assert failure_reason(Outcome.RETRY, "[Errno 111] Connection refused") == "connection_refused"
    assert failure_reason(Outcome.RETRY, "timed out") == "timeout"
    assert failure_reason(Outcome.CHANGED, "size changed") == "local_changed"
