"""SIGHUP reloads the settings (a broken file keeps the running ones); `status` reads a running uploader's
status file, and with none running summarises the outbox; `run --once --dry-run` changes nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

from tests.daemon.conftest import Daemon, uploader_env
from tests.e2e.conftest import REMOTE_ROOT, STATION, run_cli
from tests.ftp_faults import Faults, FaultyHandler
from tests.helpers import wait_until, write_file

TODAY = time.strftime("%Y-%m-%d")


def _recording(outbox: Path, name: str, body: bytes) -> Path:
    return write_file(outbox / "audio" / TODAY / f"{STATION}@{TODAY}@{name}.wav", body)


def _site_settings(tmp_path: Path, text: str) -> None:
    (tmp_path / "site" / "settings.toml").write_text(text)


def test_sighup_reloads_changed_settings_and_keeps_them_when_broken(make_server, outbox: Path, tmp_path: Path, daemons):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path)
    del env["BEEMON_FTP__REMOTE_ROOT"]  # from the site file, which the test changes
    _site_settings(tmp_path, f'[testing.ftp]\ndynaconf_merge = true\nremote_root = "{REMOTE_ROOT}"\n')
    daemon = Daemon(env, tmp_path / "run.log")
    daemons.append(daemon)
    daemon.wait_log(r"watching ")
    _recording(outbox, "10-00-00", b"first")
    wait_until(lambda: server.remote(f"{TODAY}/audio/{STATION}@{TODAY}@10-00-00.wav").is_file())

    # A broken setting: one line, the running settings stay, files keep going to the old place.
    _site_settings(tmp_path, '[testing.ftp]\ndynaconf_merge = true\nconnections = "many"\nremote_root = "/moved"\n')
    daemon.process.send_signal(signal.SIGHUP)
    failed = daemon.wait_log(r".*reload failed, the running settings stay: .*\n")
    assert "ftp.connections" in failed.group(0)
    _recording(outbox, "10-01-00", b"second")
    wait_until(lambda: server.remote(f"{TODAY}/audio/{STATION}@{TODAY}@10-01-00.wav").is_file())

    # A good change: the pipeline is rebuilt with it.
    _site_settings(tmp_path, '[testing.ftp]\ndynaconf_merge = true\nremote_root = "/moved"\n')
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_log(r"reload: changed ftp\.remote_root; rebuilding")
    daemon.wait_log(r"settings reloaded[^\n]*\n(.|\n)*watching ")
    _recording(outbox, "10-02-00", b"third")
    moved = server.root / "moved" / STATION / TODAY / "audio" / f"{STATION}@{TODAY}@10-02-00.wav"
    wait_until(moved.is_file)
    assert moved.read_bytes() == b"third"
    assert daemon.process.poll() is None
    assert daemon.stop() == 0
    assert len(re.findall(r"reload failed", daemon.log())) == 1


def test_status_of_a_running_uploader_then_of_the_outbox_alone(make_server, outbox: Path, tmp_path: Path, daemons):
    server = make_server(FaultyHandler, faults=Faults(deny_stor=("refused",)))
    env = uploader_env(server, outbox, tmp_path)
    _recording(outbox, "09-00-00", b"x" * 1000)
    refused = write_file(outbox / "video" / TODAY / f"{STATION}@{TODAY}@refused.h264", b"v" * 2000)
    stray = write_file(outbox / "audio" / TODAY / f"{STATION}@{TODAY}@08-00-00.wav.part", b"p")
    daemon = Daemon(env, tmp_path / "run.log", "--stats-interval", "0.5")
    daemons.append(daemon)

    def parked() -> dict | None:
        """The status once it shows both outcomes (the two files go over two sessions, in either order)."""
        done = run_cli(env, "status", "--json")
        report = json.loads(done.stdout)
        status = report["status"] if report["running"] else None
        return report if status and status["parked"] and status["last_delivery"] and done.returncode == 0 else None

    report = wait_until(parked, 30)
    status = report["status"]
    assert status["pid"] == daemon.process.pid and report["age_seconds"] < 5
    assert [p["file"] for p in status["parked"]] == [str(refused)]
    assert "550" in status["parked"][0]["reply"]
    assert status["last_delivery"]["file"].endswith("@09-00-00.wav")
    assert status["failures_by_reason"] == {"ftp_550": status["failed"]}
    assert status["free_space"]["free_bytes"] > 0

    table = run_cli(env, "status")
    assert table.returncode == 0
    assert re.search(rf"uploader PID {daemon.process.pid} .*: running; status written \d+ s ago", table.stdout)
    assert f"parked: {refused}: STOR: 550" in table.stdout

    assert daemon.stop() == 0
    alone = run_cli(env, "status")
    assert alone.returncode == 1, alone.stdout
    assert "NOT RUNNING" in alone.stdout
    assert re.search(rf"video/{TODAY} +1 files +2.0 KB", alone.stdout), alone.stdout
    assert f"stray partial file: {stray.relative_to(outbox)}" in alone.stdout


def test_status_without_any_uploader_summarises_the_outbox(outbox: Path, tmp_path: Path, make_server):
    env = uploader_env(make_server(), outbox, tmp_path)
    _recording(outbox, "09-00-00", b"x" * 1500)
    os.utime(_recording(outbox, "07-00-00", b"y" * 500), (time.time() - 7200, time.time() - 7200))
    done = run_cli(env, "status", "--json")
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["running"] is False and report["status"] is None
    assert report["outbox"]["groups"] == {f"audio/{TODAY}": {"files": 2, "bytes": 2000}}
    assert report["outbox"]["oldest"]["file"] == f"audio/{TODAY}/{STATION}@{TODAY}@07-00-00.wav"


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_dry_run_lists_where_each_file_would_go_and_changes_nothing(make_server, outbox: Path, tmp_path: Path):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_UPLOAD__DEBOUNCE_SECONDS="30")
    wav = _recording(outbox, "09-00-00", b"x" * 100)
    os.utime(wav, (time.time() - 60, time.time() - 60))
    young = _recording(outbox, "09-05-00", b"y")
    csv = write_file(outbox / "temp" / TODAY / f"{STATION}@{TODAY}.csv", b"t,1\n")
    os.utime(csv, (time.time() - 60, time.time() - 60))
    part = write_file(outbox / "audio" / TODAY / "x.wav.part", b"p")
    before, server_before = _tree(outbox), _tree(server.root)

    done = run_cli(env, "run", "--once", "--dry-run")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"{wav} -> {REMOTE_ROOT}/{STATION}/{TODAY}/audio/{wav.name}" in lines
    assert any(line.startswith(f"skip {young}: written ") and "upload.debounce_seconds" in line for line in lines)
    assert any(line.startswith(f"skip {csv}: a day's CSV still being written") for line in lines)
    assert any(line.startswith(f"skip {part}: 'x.wav.part' matches upload.ignore_patterns") for line in lines)
    assert lines[-1] == "1 file(s) would be uploaded, 3 skipped"
    assert _tree(outbox) == before  # no lock folder, no status file, nothing moved
    assert _tree(server.root) == server_before and server.arrivals.snapshot() == []
