"""Issue 11.1: an error in a worker is an outcome for one file, never a dead worker in a live process.

A folder that turns unreadable while its files wait, and a bad `ftp.ca_file` (missing, not PEM, a
folder): the first parks those files with one warning each and the rest keeps flowing; the second is
found at start with one line and exit code 2, for `run`, `run --once` and `check`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli, uploader_env
from tests.ftp_faults import Faults
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.test_real_servers import real_env
from tests.reliability.test_station_input import _without_file_permission_override

DAY, OTHER = "2022-07-19", "2022-07-20"
OLD = 1_600_000_000


def put(outbox: Path, day: str, name: str) -> Path:
    path = outbox / "audio" / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF " + name.encode() * 100)
    os.utime(path, (OLD, OLD))
    return path


def test_a_day_folder_locked_while_its_files_wait_parks_them_and_the_workers_go_on(
    watched_server, outbox, tmp_path, start_uploader
):
    login = threading.Event()
    server = watched_server(Faults(hold={"PASS": login}))  # nothing is sent before the folder is locked
    locked = [put(outbox, DAY, f"locked-{i}.wav") for i in range(3)]
    free = [put(outbox, OTHER, f"free-{i}.wav") for i in range(3)]
    env = uploader_env(server, outbox, tmp_path)
    run = start_uploader(
        env, "--log-level", "DEBUG", "run", "--stats-interval", "0", preexec=_without_file_permission_override()
    )
    try:
        wait_until(lambda: all(f"queued {path}" in run.output() for path in locked + free), timeout=20)
        folder = outbox / "audio" / DAY
        folder.chmod(0)
        login.set()
        wait_until(lambda: all(not path.exists() for path in free), timeout=20)
        wait_until(lambda: run.output().count("cannot read") >= len(locked), timeout=20)
        later = put(outbox, OTHER, "later.wav")  # the workers are alive: a new file still goes
        wait_until(lambda: not later.exists(), timeout=20)
        assert run.alive()
    finally:
        (outbox / "audio" / DAY).chmod(0o755)
    wait_until(lambda: outbox_files(outbox) == [], timeout=20)  # parked, then tried again
    assert run.stop() == 0
    output = run.output()
    assert "Traceback" not in output and "Exception in thread" not in output, output
    for path in locked:
        warnings = [line for line in output.splitlines() if " WARNING " in line and f"cannot read {path}" in line]
        assert len(warnings) == 1, output
        assert "Permission denied" in warnings[0]
        assert remote_of(f"{DAY}/audio/{path.name}") in server.files()
    assert len(server.files()) == 7


@pytest.fixture(scope="module")
def bad_ca_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad-ca")
    (folder / "not-pem.pem").write_text("this is not a certificate\n")
    (folder / "a-folder").mkdir()
    return {
        "missing": str(folder / "missing.pem"),
        "not PEM": str(folder / "not-pem.pem"),
        "a folder": str(folder / "a-folder"),
    }


@pytest.mark.parametrize("kind", ["missing", "not PEM", "a folder"])
def test_a_bad_ca_file_is_one_line_and_exit_2_for_run_once_and_check(
    vsftpd, tls_files, bad_ca_files, kind, outbox, tmp_path
):
    server = vsftpd(tls="explicit", cert_file=tls_files.cert_file)
    waiting = put(outbox, DAY, "waiting.wav")
    env = real_env(
        server,
        outbox,
        tmp_path,
        BEEMON_FTP__TLS="explicit",
        BEEMON_FTP__CA_FILE=bad_ca_files[kind],
        BEEMON_FTP__REMOTE_ROOT=f"{server.remote_root}/data",
    )
    expected = {"missing": "does not exist", "not PEM": "holds no PEM certificate", "a folder": "is a folder"}[kind]
    for args in (("run", "--stats-interval", "0"), ("run", "--once"), ("check",)):
        done = run_cli(env, *args, timeout=30)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (args, done.stderr)
        assert "ftp.ca_file" in lines[0] and expected in lines[0] and "BEEMON_FTP__CA_FILE" in lines[0]
        assert done.stdout == ""
    assert waiting.exists() and server.files() == {}


def test_vsftpd_over_ftps_with_the_right_ca_delivers(vsftpd, tls_files, outbox, tmp_path):
    """The same server and settings with a good CA file: the bad ones above were the only fault."""
    server = vsftpd(tls="explicit", cert_file=tls_files.cert_file)
    waiting = put(outbox, DAY, "waiting.wav")
    env = real_env(
        server,
        outbox,
        tmp_path,
        BEEMON_FTP__TLS="explicit",
        BEEMON_FTP__CA_FILE=tls_files.ca_file,
        BEEMON_FTP__REMOTE_ROOT=f"{server.remote_root}/data",
    )
    done = run_cli(env, "run", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    assert not waiting.exists()
    assert server.files() == {f"data/rpi4-test/{DAY}/audio/waiting.wav": b"RIFF " + b"waiting.wav" * 100}


def _sink_pids(run) -> list[int]:
    """The uploader's spawned sink process(es): multiprocessing children that are not its resource tracker."""
    pids = []
    for pid in run.group():
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command and b"resource_tracker" not in command:
            pids.append(pid)
    return pids


def test_a_sink_that_dies_again_and_again_ends_run_with_exit_1_and_one_line(
    watched_server, outbox, tmp_path, start_uploader
):
    """The sink cannot work at all (here: killed at every start, as an OOM killer would): `run` stops
    rebuilding it after a few fruitless tries and exits 1, so that systemd restarts the unit, and the
    waiting file stays in the outbox."""
    server = watched_server(Faults(hold={"PASS": threading.Event()}))  # nothing is ever delivered
    waiting = put(outbox, DAY, "waiting.wav")
    env = uploader_env(server, outbox, tmp_path)
    env.update(BEEMON_UPLOAD__RETRY_BASE_SECONDS="0.05", BEEMON_UPLOAD__RETRY_MAX_SECONDS="0.2")
    run = start_uploader(env, "run", "--stats-interval", "0")
    killed: set[int] = set()

    def kill_sinks() -> bool:
        for pid in _sink_pids(run):
            if pid not in killed:
                killed.add(pid)
                os.kill(pid, 9)
        return not run.alive()

    wait_until(kill_sinks, timeout=40, interval=0.05)
    assert run.wait(10) == 1
    output = run.output()
    assert "Traceback" not in output, output
    last = [line for line in output.splitlines() if "times in a row without delivering a file" in line]
    assert len(last) == 1 and " ERROR " in last[0], output
    assert waiting.exists() and server.files() == {}
