"""The benchmark workloads at tiny sizes: correctness only (every file on the server, whole; none left locally).

The same functions `make bench` times, so the bench cannot quietly measure a broken run. No figure
is asserted: timing belongs to the bench, not to the default suite.
"""

from __future__ import annotations

import pytest

from tests import servers
from tests.benchmarks import hash_cost, latency, scale, workloads
from tests.benchmarks.workloads import MB

pytestmark = pytest.mark.timeout(60)


def test_small_files_loopback_and_delayed(tmp_path):
    figures = workloads.small_files(tmp_path / "plain", files=12, per_login_files=3)
    assert figures["ours_files_per_s"] and figures["per_login_files_per_s"]
    delayed = workloads.small_files(tmp_path / "delayed", files=6, delay=0.005, per_login_files=2, with_lftp=False)
    assert delayed["ours_commands_per_file"]


def test_large_files(tmp_path):
    figures = workloads.large_files(tmp_path, files=2, size=MB // 2)
    assert figures["ours_cpu_s_per_gb"] is not None


def test_small_and_large_files_on_vsftpd(tmp_path):
    servers.find_server("vsftpd", "vsftpd") or servers.unavailable("vsftpd (Debian package vsftpd) is not installed")
    small = workloads.small_files(tmp_path / "small", files=8, per_login_files=2, kind="vsftpd")
    assert small["ours_files_per_s"] and small["per_login_files_per_s"]
    large = workloads.large_files(tmp_path / "large", files=2, size=MB // 2, kind="vsftpd", with_lftp=False)
    assert large["session_mb_per_s"]


def test_run_once_end_to_end(tmp_path):
    figures = workloads.once_files(tmp_path, files=6, delay=0.005, per_login_files=2, with_lftp=False)
    assert figures["ours_files_per_s"] and figures["per_login_files_per_s"]


def test_backlog_with_a_fresh_file(tmp_path):
    figures = latency.backlog(tmp_path, files=4, size=200_000, delay=0.005, debounce=0.2, exact=True)
    assert figures["fresh_latency_s"] > 0


def test_live_files(tmp_path):
    figures = latency.live_latency(tmp_path, files=4, rate=20, debounce=0.2)
    assert figures["p95_s"] >= figures["p50_s"] > 0


def test_idle_outbox_keeps_every_file(tmp_path):
    slices = scale.idle_cpu(tmp_path, files=30, window=0.4, slices=2, settle=0.5)
    assert [set(figures) for figures in slices] == [
        {"inotify_cpu_pct", "polling_cpu_pct", "observer_cpu_pct", "inotify_busiest_second_ms"}
    ] * 2


def test_backfill(tmp_path):
    figures = scale.backfill(tmp_path, files=40, delay=0.005, after=0.3, settle=0.3, quiet=0.3)
    assert figures["first_upload_s"] > 0 and figures["delivered"] >= 1


def test_hash_cost_rows(tmp_path):
    figures = hash_cost.measure(tmp_path, gib=1 / 1024, files=3, tries=1)
    assert all(figures[f"cpu_{mode}_s_per_gb"] for mode in hash_cost.MODES)
    assert figures["manifest_commands_per_file"]  # the day's SHA256SUMS went up, and was counted


def test_startup_measurement(capsys):
    from tests.benchmarks import startup

    startup.main(["--runs", "1", "--top", "0"])
    assert "returned: median" in capsys.readouterr().out


def test_floor_clients_and_watchdog_alone(tmp_path):
    """The floor's minimal clients (tests/benchmarks/floor.py, floor_loop.py) deliver every file whole, and the guarded ones
    leave no temporary name and no local file (each run checks it, and raises otherwise)."""
    from tests.benchmarks import floor

    servers.find_server("vsftpd", "vsftpd") or servers.unavailable("vsftpd (Debian package vsftpd) is not installed")
    for mode in ("bare", "guarded"):
        for how in ("threads", "processes"):
            figures = floor.one_client_run(tmp_path / f"{mode}-{how}", mode, how, files=9, connections=2)
            assert figures["seconds"] > 0 and figures["cpu_seconds"] > 0
    for how in ("loop", "loop+journal"):  # one thread driving the connections from a selector
        figures = floor.one_client_run(tmp_path / f"guarded-{how}", "guarded", how, files=9, connections=2)
        assert figures["seconds"] > 0
    assert floor.watchdog_run(tmp_path / "watch", files=5)["cpu_seconds"] >= 0
