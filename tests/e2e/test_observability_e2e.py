"""The figures a person or Prometheus sees during a run: stats lines, JSON logs, metrics, the progress bar."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
import urllib.request
from dataclasses import replace

from pipeline.app.options import options_from_settings
from pipeline.app.running import RunningPipeline
from pipeline.app.stats import UploadStats
from pipeline.app.uploader import Uploader
from settings import build_settings
from tests.e2e.conftest import STATION, cli, uploader_env
from tests.helpers import free_port, station_files, wait_until, write_file

DAY = "2022-07-19"


def use_env(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        if key.startswith("BEEMON_"):
            monkeypatch.setenv(key, value)


def test_metrics_endpoint_serves_the_statistics(make_server, outbox, tmp_path, monkeypatch):
    server = make_server()
    use_env(monkeypatch, uploader_env(server, outbox, tmp_path))
    port = free_port()
    options = replace(options_from_settings(build_settings()), metrics_port=port)
    files = [
        write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@0{i}-00-00.wav", b"x" * (1000 + i)) for i in range(3)
    ]
    with RunningPipeline(options, UploadStats()):
        wait_until(lambda: not any(p.exists() for p in files), timeout=20)
        wait_until(lambda: "beemon_uploader_delivered_files_total 3.0" in scrape(port), timeout=10)
        page = scrape(port)
    assert "beemon_uploader_delivered_bytes_total 3003.0" in page
    assert 'beemon_uploader_queued_files{queue="primary"} 0.0' in page
    assert "beemon_uploader_in_flight_files 0.0" in page
    assert "beemon_uploader_failed_attempts_total 0.0" in page
    # pyftpdlib offers no hash command: each delivery was checked by its size
    assert 'beemon_uploader_verified_files_total{by="size"} 3.0' in page
    assert 'beemon_uploader_verified_files_total{by="hash"} 0.0' in page
    assert "beemon_uploader_hash_mismatches_total 0.0" in page


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_populate_secondary_queue_queues_the_outbox_as_backfill(make_server, outbox, tmp_path, monkeypatch):
    server = make_server()
    use_env(monkeypatch, uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1"))
    options = replace(options_from_settings(build_settings()), rescan_interval=0)
    files = {
        write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@01-00-00.wav", b"audio"): f"{DAY}/audio",
        write_file(outbox / "temp" / DAY / f"{STATION}@{DAY}.csv.final", b"t,c\n"): f"{DAY}/temp",
    }
    growing = write_file(outbox / "temp" / "2022-07-20" / f"{STATION}@2022-07-20.csv", b"t,c\n")
    for path in files:
        os.utime(path, (1_600_000_000, 1_600_000_000))  # quiet long ago: ready at once
    uploader = Uploader(__import__("queue").Queue(), options)
    with RunningPipeline(options, UploadStats(), watch=False) as running:
        uploader._helper = running.helper
        assert uploader.populate_secondary_queue() == 2
        wait_until(lambda: not any(p.exists() for p in files), timeout=20)
    for path, folder in files.items():
        assert server.remote(f"{folder}/{path.name.removesuffix('.final')}").is_file()
    assert growing.exists()


def test_run_logs_json_lines_and_statistics(make_server, outbox, tmp_path):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path)
    process = subprocess.Popen(
        cli("--log-format", "json", "run", "--stats-interval", "0.3"), env=env, stderr=subprocess.PIPE, text=True
    )
    path = write_file(outbox / "video" / DAY / f"{STATION}@{DAY}@05-00-00.h264", b"v" * 5000)
    try:
        wait_until(lambda: not path.exists(), timeout=20)
        time.sleep(0.4)  # one more statistics line after the delivery
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    entries = [json.loads(line) for line in err.splitlines()]
    delivered = [e for e in entries if e["message"].startswith("delivered ")]
    assert len(delivered) == 1
    assert delivered[0]["logger"] == "beemon.sink"
    assert delivered[0]["size"] == 5000
    assert delivered[0]["outcome"] == "delivered"
    assert delivered[0]["remote"] == f"/data/{STATION}/{DAY}/video/{path.name}"
    stats = [e["message"] for e in entries if e["message"].startswith("stats: ")]
    assert stats, err
    assert re.match(r"stats: queued 0 live \+ 0 backfill, in flight 0, delivered 1, failed 0, 5.0 KB, ", stats[-1])
    assert server.password not in err


def test_once_on_a_terminal_shows_a_progress_bar(make_server, outbox, tmp_path):
    server = make_server()
    for i in range(3):
        write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@0{i}-00-00.wav", os.urandom(20_000))
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        cli("run", "--once"),
        env=uploader_env(server, outbox, tmp_path),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    assert process.wait(timeout=30) == 0
    text = output.decode(errors="replace")
    assert "uploading 3 files" in text
    assert "100%" in text
    assert "3/3 files" in text
    assert station_files(outbox) == []
