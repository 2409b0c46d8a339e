"""`run --once`, `check`, `demo` and the orchestrator's `"stop"`, end to end on loopback."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from pyftpdlib.handlers import FTPHandler

from pipeline.app.uploader import Uploader
from pipeline.outbox.lock import OutboxBusy
from settings import build_settings
from tests.e2e.conftest import STATION, cli, run_cli, uploader_env
from tests.helpers import station_files, wait_until, write_file

DAY = "2022-07-19"


class RefusesOneFile(FTPHandler):
    """Answers 550 to any STOR whose name contains "forbidden", as a server with a bad permission would."""

    def ftp_STOR(self, file: str, mode: str = "w") -> object:
        if "forbidden" in os.path.basename(file):
            self.respond("550 Permission denied.")
            return None
        return super().ftp_STOR(file, mode)


def test_once_delivers_everything_ready_and_exits_0(make_server, outbox, tmp_path):
    server = make_server()
    files = {
        write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@01-00-00.wav", os.urandom(70_000)): f"{DAY}/audio",
        write_file(outbox / "video" / DAY / f"{STATION}@{DAY}@01-00-00.h264", os.urandom(300_000)): f"{DAY}/video",
        write_file(outbox / "temp" / DAY / f"{STATION}@{DAY}.csv.final", b"t,c\n1,20.5\n"): f"{DAY}/temp",
    }
    growing = write_file(outbox / "temp" / "2022-07-20" / f"{STATION}@2022-07-20.csv", b"t,c\n")
    partner = write_file(outbox / "temp" / DAY / f"{STATION}@{DAY}.csv", b"t,c\n1,20.5\n")
    final_mtime = (outbox / "temp" / DAY / f"{STATION}@{DAY}.csv.final").stat().st_mtime_ns
    os.utime(partner, ns=(final_mtime, final_mtime))  # written before its .final, as a sensor does
    contents = {path: path.read_bytes() for path in files}
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    for path, folder in files.items():
        remote_name = path.name.removesuffix(".final")
        assert server.remote(f"{folder}/{remote_name}").read_bytes() == contents[path]
        assert not path.exists()
    assert not partner.exists()  # X.csv goes with its X.csv.final
    assert growing.read_bytes() == b"t,c\n"  # today's growing .csv stays
    assert "delivered 3 of 3 files" in done.stderr
    assert server.password not in done.stderr + done.stdout


def test_once_exits_1_listing_what_was_not_delivered(make_server, outbox, tmp_path):
    server = make_server(RefusesOneFile)
    good = write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@02-00-00.wav", b"good")
    bad = write_file(outbox / "audio" / DAY / "forbidden.wav", b"bad")
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once", "--max-retries", "1")
    assert done.returncode == 1, done.stderr
    assert server.remote(f"{DAY}/audio/{good.name}").read_bytes() == b"good"
    assert not good.exists()
    assert bad.read_bytes() == b"bad"
    assert re.search(rf"not delivered: {re.escape(str(bad))} \(.*550", done.stderr), done.stderr
    assert "delivered 1 of 2 files" in done.stderr


def test_once_with_nothing_ready_exits_0(make_server, outbox, tmp_path):
    server = make_server()
    write_file(outbox / "temp" / DAY / f"{STATION}@{DAY}.csv", b"growing")
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert "0 files to deliver" in done.stderr


def test_check_against_a_good_server(make_server, outbox, tmp_path):
    server = make_server()
    done = run_cli(uploader_env(server, outbox, tmp_path), "check")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["settings", "resolve", "connect", "login", "write", "remove"]
    assert all(" ok" in line for line in lines), lines
    # The probe is gone; the remote root exists.
    assert [p for p in (server.root / "data").rglob("*") if p.is_file()] == []


def test_check_with_a_wrong_password(make_server, outbox, tmp_path):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__PASSWORD="not-the-password")
    done = run_cli(env, "check")
    assert done.returncode == 1
    last = done.stdout.splitlines()[-1]
    assert last.startswith("login: failed: ") and " 530 " in last, done.stdout
    assert done.stdout.splitlines()[-2].startswith("connect: ok")
    assert "not-the-password" not in done.stdout + done.stderr


def test_check_with_a_closed_port(make_server, outbox, tmp_path):
    server = make_server()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__PORT=str(closed_port))
    done = run_cli(env, "check")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith(f"connect: failed: connection refused by 127.0.0.1:{closed_port}"), (
        done.stdout
    )


def test_check_with_an_unresolvable_host(make_server, outbox, tmp_path):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__HOST="no-such-host.invalid")
    done = run_cli(env, "check")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith("resolve: failed: no-such-host.invalid"), done.stdout


@pytest.mark.parametrize("start_method", ["default", "spawn"])
def test_orchestrator_stops_the_uploader_over_a_multiprocessing_queue(
    make_server, outbox, tmp_path, monkeypatch, start_method
):
    """The original orchestrator's way: a plain `multiprocessing.Queue()` (fork on Linux), or a spawn context's."""
    server = make_server()
    for key, value in uploader_env(server, outbox, tmp_path).items():
        if key.startswith("BEEMON_"):
            monkeypatch.setenv(key, value)
    context = multiprocessing.get_context("spawn") if start_method == "spawn" else multiprocessing
    commands = context.Queue()
    uploader = Uploader(commands, build_settings())
    uploader.start()
    try:
        path = write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@03-00-00.wav", b"from the orchestrator")
        wait_until(lambda: server.remote(f"{DAY}/audio/{path.name}").is_file() and not path.exists(), timeout=30)
        # The started process holds the outbox's lock (the caller's copy is closed): a second one is refused.
        wait_until(lambda: (outbox / ".beemon" / "lock").read_text().strip() == str(uploader.pid))
        with pytest.raises(OutboxBusy, match=f"PID {uploader.pid}"):
            Uploader(context.Queue(), build_settings()).start()
        once = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
        assert once.returncode == 2 and f"(PID {uploader.pid})" in once.stderr, once.stderr
        commands.put("stop")
        uploader.join(timeout=30)
    finally:
        if uploader.is_alive():
            uploader.terminate()
    assert uploader.exitcode == 0
    assert server.remote(f"{DAY}/audio/{path.name}").read_bytes() == b"from the orchestrator"


def test_unknown_command_is_an_error_message(make_server, outbox, tmp_path, monkeypatch):
    server = make_server()
    for key, value in uploader_env(server, outbox, tmp_path).items():
        if key.startswith("BEEMON_"):
            monkeypatch.setenv(key, value)
    uploader = Uploader(multiprocessing.get_context("spawn").Queue())
    assert (
        uploader._handle_command("pause")
        == "unknown command 'pause': the uploader understands only 'stop' and 'reload'"
    )
    assert uploader._handle_command("stop") is None


def test_demo_delivers_every_file_it_wrote_run_after_run(tmp_path: Path):
    """Twice in one folder: the second day's CSV is not refused against the first run's copy on the server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
    env["BEEMON_CONFIG_DIR"] = str(tmp_path / "site")
    first = run_cli(env, "demo", "--duration", "3", "--var", str(tmp_path / "var"), timeout=90, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    done = run_cli(env, "demo", "--duration", "2", "--var", str(tmp_path / "var"), timeout=90, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = [line for line in done.stdout.splitlines() if line.startswith("summary:")]
    assert len(summary) == 1
    match = re.match(r"summary: station wrote (\d+) files; (\d+) arrived byte-identical; .* 0 missing$", summary[0])
    assert match, summary
    assert (
        int(match[1]) == int(match[2]) >= 3
    )  # a WAV, an H.264, the .csv.final (a shorter day file than the first run left)
    remote_files = [p for p in (tmp_path / "var" / "ftp-root").rglob("*") if p.is_file() and p.name != "SHA256SUMS"]
    assert len(remote_files) == int(match[1])
    assert {p.suffix for p in remote_files} == {".wav", ".h264", ".csv"}
    assert station_files(tmp_path / "var" / "outbox") == []


def test_kept_files_are_not_uploaded_again_by_rescans(make_server, outbox, tmp_path, monkeypatch):
    """With delete_after_upload = false a delivered file stays; rescans must not send it again, a change must."""
    from dataclasses import replace

    from pipeline.app.options import options_from_settings
    from pipeline.app.running import RunningPipeline
    from pipeline.app.stats import UploadStats

    server = make_server()
    for key, value in uploader_env(server, outbox, tmp_path, BEEMON_UPLOAD__DELETE_AFTER_UPLOAD="false").items():
        if key.startswith("BEEMON_"):
            monkeypatch.setenv(key, value)
    options = replace(options_from_settings(build_settings()), rescan_interval=0.2)
    path = write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@04-00-00.wav", b"first")
    with RunningPipeline(options, UploadStats()):
        wait_until(lambda: server.arrivals.snapshot() == [path.name], timeout=20)
        # Several rescans (every 0.2 s) find the kept file: none may send it again.
        with contextlib.suppress(AssertionError):
            wait_until(lambda: len(server.arrivals.snapshot()) > 1, timeout=1.5)
        assert server.arrivals.snapshot() == [path.name]
        path.write_bytes(b"second version")
        wait_until(lambda: len(server.arrivals.snapshot()) == 2, timeout=20)
        wait_until(lambda: server.remote(f"{DAY}/audio/{path.name}").read_bytes() == b"second version", timeout=10)
    assert path.read_bytes() == b"second version"


def test_uploader_without_config_reads_a_beemon_config_ini_in_the_working_directory(tmp_path, monkeypatch):
    """The original's `config=None` meant the repository's beemon-config.ini: it is still honoured.

    (Before issue 12 this INI named no server and the test passed on the development fallback, the
    embedded server; a station's INI names its server, and one that does not is refused: see
    tests/conformance/test_configuration.py.)
    """
    for name in [n for n in os.environ if n.startswith("BEEMON_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BEEMON_CONFIG_DIR", str(tmp_path / "site"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "beemon-config.ini").write_text(
        "[global]\nroot_upload_directory = /srv/bee\nlocal_output_directory = /home/bee/bee_tmp\n"
        "[ftp]\nhost = cs.example.edu\nusername = bee\npassword = pw\nupload_delay = 4\n"
    )
    uploader = Uploader(multiprocessing.Queue())
    assert uploader.options.ftp.host == "cs.example.edu"
    assert uploader.options.ftp.remote_root == "/srv/bee"
    assert uploader.options.outbox == "/home/bee/bee_tmp"
    assert uploader.options.debounce_seconds == 4.0
    assert not uploader.options.embedded


def test_once_leaves_a_file_still_open_for_writing_names_it_and_exits_1(make_server, outbox, tmp_path):
    server = make_server()
    done_file = write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@06-00-00.wav", b"finished")
    os.utime(done_file, (time.time() - 60, time.time() - 60))
    writing = outbox / "audio" / DAY / f"{STATION}@{DAY}@06-01-00.wav"
    with writing.open("wb") as recorder:
        recorder.write(b"first half ")
        recorder.flush()
        os.utime(writing, (time.time() - 60, time.time() - 60))  # old enough: only the open writer holds it back
        done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
        recorder.write(b"second half")
    assert done.returncode == 1, done.stderr
    assert "2 files to deliver" in done.stderr
    assert f"not delivered: {writing} (still open for writing)" in done.stderr
    assert server.remote(f"{DAY}/audio/{done_file.name}").read_bytes() == b"finished"
    assert not server.remote(f"{DAY}/audio/{writing.name}").exists()
    assert writing.read_bytes() == b"first half second half"


def cmdline(pid: int) -> bytes:
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read()


def children_of(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as handle:
            found += [int(child) for child in handle.read().split()]
    return found


def test_a_killed_sink_process_is_noticed_and_restarted(make_server, outbox, tmp_path):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path)
    process = subprocess.Popen(cli("run", "--stats-interval", "0"), env=env, stderr=subprocess.PIPE, text=True)
    try:
        first = write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@07-00-00.wav", b"before")
        wait_until(lambda: not first.exists(), timeout=20)
        sinks = [pid for pid in children_of(process.pid) if b"resource_tracker" not in cmdline(pid)]
        assert sinks, "no sink process found"
        for pid in sinks:
            os.kill(pid, signal.SIGKILL)
        second = write_file(outbox / "audio" / DAY / f"{STATION}@{DAY}@07-01-00.wav", b"after the crash")
        wait_until(lambda: not second.exists(), timeout=30)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert server.remote(f"{DAY}/audio/{second.name}").read_bytes() == b"after the crash"
    assert "the sink process ended unexpectedly (exit code -9)" in err
