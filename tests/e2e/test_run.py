"""`beemon-uploader run` as a subprocess against a loopback server: live files, backlog, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from pyftpdlib.handlers import FTPHandler

from tests.e2e.conftest import STATION, cli, uploader_env
from tests.helpers import station_files, wait_until, write_file

DAY = "2022-07-19"


def name(sensor: str, index: int, day: str = DAY) -> str:
    ext = {"audio": "wav", "video": "h264"}[sensor]
    return f"{STATION}@{day}@10-00-{index:02d}.{ext}"


class SlowRenameHandler(FTPHandler):
    """Takes 0.15 s per rename, as a slow link would: a backlog of 20 files lasts long enough to be overtaken.

    (pyftpdlib serves all connections in one thread; the tests using it run one connection.)
    """

    def ftp_RNTO(self, path: str) -> object:
        time.sleep(0.15)
        return super().ftp_RNTO(path)


def test_run_uploads_backlog_and_live_files_fresh_first_then_stops_cleanly(make_server, outbox, tmp_path):
    server = make_server(SlowRenameHandler)
    backlog = {outbox / "audio" / DAY / name("audio", i): os.urandom(40_000 + i) for i in range(12)}
    for path, content in backlog.items():
        write_file(path, content)
    old = 1_600_000_000  # older than any debounce: the backfill takes them at once
    for path in backlog:
        os.utime(path, (old, old))
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1")
    process = subprocess.Popen(
        cli("run", "--stats-interval", "0"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(lambda: len(server.arrivals.snapshot()) >= 1, timeout=30)
        fresh = write_file(outbox / "video" / "2022-07-20" / name("video", 1, "2022-07-20"), os.urandom(30_000))
        fresh_content = fresh.read_bytes()
        wait_until(lambda: fresh.name in server.arrivals.snapshot(), timeout=30)
        wait_until(lambda: len(server.arrivals.snapshot()) == len(backlog) + 1, timeout=60)
        wait_until(lambda: not any(p.exists() for p in [*backlog, fresh]), timeout=10)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    order = server.arrivals.snapshot()
    # Fresh before backlog: the live file overtook most of the backlog still queued when it appeared.
    assert order.index(fresh.name) <= 4, order
    assert sorted(order) == sorted([p.name for p in backlog] + [fresh.name])
    for path, content in backlog.items():
        assert server.remote(f"{DAY}/audio/{path.name}").read_bytes() == content
    assert server.remote(f"2022-07-20/video/{fresh.name}").read_bytes() == fresh_content
    # Nothing half-done: no temporary names on the server, nothing left locally but folders.
    assert [p for p in server.root.rglob(".*")] == []
    assert station_files(outbox) == []
    assert server.password not in output


def test_sigterm_mid_backlog_leaves_unsent_files_in_the_outbox(make_server, outbox, tmp_path):
    server = make_server(SlowRenameHandler)
    files = {write_file(outbox / "audio" / DAY / name("audio", i), os.urandom(60_000)): None for i in range(10)}
    for path in files:
        os.utime(path, (1_600_000_000, 1_600_000_000))
    contents = {path: path.read_bytes() for path in files}
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1")
    process = subprocess.Popen(
        cli("run", "--stats-interval", "0"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    wait_until(lambda: len(server.arrivals.snapshot()) >= 2, timeout=30)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    arrived = set(server.arrivals.snapshot())
    assert 2 <= len(arrived) < len(files)
    for path, content in contents.items():
        remote = server.remote(f"{DAY}/audio/{path.name}")
        if path.name in arrived:
            assert remote.read_bytes() == content
            assert not path.exists()
        else:
            # Not delivered: still in the outbox, whole, and not visible under its final name.
            assert path.read_bytes() == content
            assert not remote.exists()


def test_run_with_bad_settings_exits_2_with_one_line(tmp_path, outbox, make_server):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="many")
    done = subprocess.run(cli("run"), env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr == (
        "beemon-uploader: setting ftp.connections = 'many' is not valid: it must be an integer from 1 to 32; "
        "fix it in settings.toml or BEEMON_FTP__CONNECTIONS\n"
    )


def test_run_creates_a_missing_outbox(make_server, tmp_path):
    server = make_server()
    outbox = tmp_path / "not-yet" / "outbox"
    env = uploader_env(server, outbox, tmp_path)
    process = subprocess.Popen(
        cli("run", "--stats-interval", "0"), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_until(outbox.is_dir, timeout=20)
        path = write_file(outbox / "audio" / DAY / name("audio", 0), b"RIFF....WAVE")
        wait_until(lambda: path.name in server.arrivals.snapshot(), timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert server.remote(f"{DAY}/audio/{path.name}").read_bytes() == b"RIFF....WAVE"
    assert str(outbox) in output
