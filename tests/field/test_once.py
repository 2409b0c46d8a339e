"""`run --once` as a cron job or a test calls it: right after the files were written, against a server
that may refuse or be gone. It delivers what was there, names what it left and why, and always ends."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

from tests.e2e.conftest import cli, run_cli
from tests.field.conftest import field_env, recording
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of, start_uploader  # noqa: F401
from tests.reliability.server import DeadPort, SilentPort

DAY = "2024-05-02"
#: How long the sink's start-up takes in the empty-outbox test.
SLOW_CHILD_SECONDS = 6.0  # the parent alone takes up to 1.5 s on a busy 2-core machine


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if " ERROR " in line]


def test_once_right_after_50_recordings_delivers_them_all(link_server, outbox, tmp_path):
    files = {recording(outbox, "audio", DAY, f"10-{i // 60:02d}-{i % 60:02d}", 4_000 + i): None for i in range(50)}
    contents = {path: path.read_bytes() for path in files}
    # The production quiet period: every file is younger than it when the run starts.
    env = field_env(link_server, outbox, tmp_path, BEEMON_UPLOAD__DEBOUNCE_SECONDS="1")
    done = run_cli(env, "run", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "50 files to deliver" in done.stderr and "delivered 50 of 50 files" in done.stderr, done.stderr
    for path, content in contents.items():
        assert (link_server.root / remote_of(f"{DAY}/audio/{path.name}")).read_bytes() == content
    assert outbox_files(outbox) == []
    assert sorted(link_server.arrivals.snapshot()) == sorted(path.name for path in files)


def test_once_names_a_file_still_open_for_writing_and_exits_1(link_server, outbox, tmp_path):
    finished = recording(outbox, "audio", DAY, "11-00-00", 20_000)
    open_one = outbox / "video" / DAY / f"rpi4-test@{DAY}@11-00-05.h264"
    open_one.parent.mkdir(parents=True)
    with open_one.open("wb") as recorder:
        recorder.write(b"first half ")
        recorder.flush()
        done = run_cli(field_env(link_server, outbox, tmp_path), "run", "--once", timeout=60)
        recorder.write(b"second half")
    assert done.returncode == 1, done.stderr
    assert (link_server.root / remote_of(f"{DAY}/audio/{finished.name}")).exists()
    assert error_lines(done.stderr) == [
        line for line in done.stderr.splitlines() if f"not delivered: {open_one} (still open for writing)" in line
    ], done.stderr
    assert len(error_lines(done.stderr)) == 1
    assert outbox_files(outbox) == [f"video/{DAY}/{open_one.name}"]
    assert open_one.read_bytes() == b"first half second half"


def test_once_with_a_wrong_password_exits_1_at_once_with_one_line(link_server, outbox, tmp_path):
    recording(outbox, "audio", DAY, "12-00-00", 10_000, old=True)
    # The defaults' retry cap (300 s): giving up must not depend on it.
    env = field_env(link_server, outbox, tmp_path, BEEMON_FTP__PASSWORD="wrong", BEEMON_UPLOAD__RETRY_MAX_SECONDS="300")
    started = time.monotonic()
    done = run_cli(env, "run", "--once", "--max-retries", "1", timeout=60)
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 8
    [line] = error_lines(done.stderr)
    assert re.search(r"cannot log in to 127\.0\.0\.1:\d+: .*530.*check ftp\.username .* and the password", line), line
    assert len(link_server.watch.logins) == 1
    assert len(outbox_files(outbox)) == 1


def test_once_with_a_wrong_password_and_4_connections_tries_the_password_once(link_server, outbox, tmp_path):
    """The other sessions open their connections while the first logs in, but send nothing of the account
    before it succeeded: a server with a lockout policy counts one refused attempt, not four."""
    for index in range(8):
        recording(outbox, "audio", DAY, f"12-30-{index:02d}", 10_000, old=True)
    env = field_env(link_server, outbox, tmp_path, BEEMON_FTP__PASSWORD="wrong", BEEMON_FTP__CONNECTIONS="4")
    done = run_cli(env, "run", "--once", "--max-retries", "1", timeout=60)
    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    assert "cannot log in" in line and "530" in line and "8 file(s) left in the outbox" in line, line
    assert len(link_server.watch.logins) == 1, link_server.watch.logins
    assert 1 <= len(link_server.watch.connections) <= 4
    assert len(outbox_files(outbox)) == 8


def test_run_with_a_wrong_password_and_a_backlog_tries_the_password_once(
    link_server,
    outbox,
    tmp_path,
    start_uploader,  # noqa: F811
):
    """A station restarted with a wrong password and a backlog: the backlog's jobs are ready while the first
    session logs in (20 ms a reply), but the other sessions send nothing of the account before it succeeded,
    so a lockout policy counts one refused attempt, then one per retry cap, not one per session."""
    for index in range(8):
        recording(outbox, "audio", DAY, f"12-40-{index:02d}", 10_000, old=True)
    env = field_env(
        link_server,
        outbox,
        tmp_path,
        BEEMON_FTP__PASSWORD="wrong",
        BEEMON_FTP__CONNECTIONS="4",
        BEEMON_UPLOAD__RETRY_MAX_SECONDS="300",
    )
    uploader = start_uploader(env)
    wait_until(lambda: "cannot log in" in uploader.output(), timeout=30)
    # The connections the others opened ahead are closed (none is left idle on the server, taking a slot of
    # a per-address cap until the server times it out), and none logs in within 15 round trips (without the
    # hold, all four sent the password within a few milliseconds of each other).
    wait_until(lambda: established_to(link_server.server.port) == 0, timeout=10)
    time.sleep(0.3)
    assert uploader.stop() == 0
    assert len(link_server.watch.logins) == 1, link_server.watch.logins
    assert len(outbox_files(outbox)) == 8


def established_to(port: int) -> int:
    """The TCP connections to `port` on this machine that are established, as the kernel lists them."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                    count += 1
    return count


def test_once_against_a_refused_port_exits_1_after_its_retries(outbox, tmp_path, link_server):
    recording(outbox, "audio", DAY, "13-00-00", 10_000, old=True)
    port = link_server.server.port
    link_server.stop()
    dead = DeadPort(port)  # accepts and hangs up at once, counting the attempts
    try:
        env = field_env(
            link_server,
            outbox,
            tmp_path,
            BEEMON_UPLOAD__RETRY_BASE_SECONDS="0.2",
            BEEMON_UPLOAD__RETRY_MAX_SECONDS="300",
        )
        started = time.monotonic()
        done = run_cli(env, "run", "--once", "--max-retries", "2", timeout=60)
        took = time.monotonic() - started
    finally:
        dead.close()
    assert done.returncode == 1, done.stderr
    # The first attempt and two retries, one at a time, on the backoff schedule (0.2 s, then 0.4 s at most).
    assert len(dead.attempts) == 3, dead.attempts
    assert dead.attempts[-1] - dead.attempts[0] <= 0.6 + 0.5
    assert took < 10
    [line] = error_lines(done.stderr)
    assert f"cannot reach 127.0.0.1:{port} (3 connection attempt(s) failed" in line and "1 file(s) left" in line
    assert len(outbox_files(outbox)) == 1


def test_sigterm_during_once_exits_1_and_leaves_the_rest(link_server, outbox, tmp_path):
    for i in range(40):
        recording(outbox, "audio", DAY, f"14-00-{i:02d}", 200_000, old=True)
    env = field_env(link_server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1")
    log = (tmp_path / "once.log").open("w")
    process = subprocess.Popen(cli("run", "--once"), env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: len(link_server.arrivals.snapshot()) >= 2, timeout=30)
        process.send_signal(signal.SIGTERM)
        code = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
    output = (tmp_path / "once.log").read_text()
    assert code == 1, output
    left = outbox_files(outbox)
    assert left and len(left) + len(link_server.arrivals.snapshot()) == 40, output
    assert "stopped by a signal" in output
    for name in link_server.arrivals.snapshot():  # what arrived is whole
        assert (link_server.root / remote_of(f"{DAY}/audio/{name}")).stat().st_size == 200_000
    assert not os.path.exists(outbox / "audio" / DAY / link_server.arrivals.snapshot()[0])


#: Makes every spawned child (the sink) start slowly, as on a Pi whose SD card is slow to read modules.
SLOW_CHILD = """
import sys
if "--multiprocessing-fork" in sys.argv:
    import time
    time.sleep(float({seconds!r}))
"""


def test_once_on_an_empty_outbox_does_not_wait_for_the_sink_to_start(link_server, outbox, tmp_path):
    """A cron job every minute on a station with nothing to send: the run ends once it has looked.

    The sink is started first (its logins overlap the scan). Stopping it must not wait until it
    has finished starting: here the sink's start-up takes 3 s (a slow SD card, made so by a
    `sitecustomize` that sleeps in spawned children); the run must end well before that."""
    slow = tmp_path / "slow-children"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_CHILD.format(seconds=SLOW_CHILD_SECONDS))
    env = field_env(link_server, outbox, tmp_path, PYTHONPATH=f"{slow}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    started = time.monotonic()
    done = run_cli(env, "run", "--once", timeout=60)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "0 files to deliver" in done.stderr, done.stderr
    assert wall < SLOW_CHILD_SECONDS, wall


#: Records, when the command's own process exits, which top-level packages it loaded.
LOADED_AT_EXIT = """
import atexit, sys

def _record():
    if "pipeline.cli.main" in sys.modules and "--multiprocessing-fork" not in sys.argv:
        with open({path!r}, "w") as out:
            out.write("\\n".join(sorted({{name.split(".")[0] for name in sys.modules}})))

atexit.register(_record)
"""


def processes_with(marker: str) -> list[int]:
    """The live processes whose environment holds `marker` (every process a run started inherits it)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                if marker.encode() in environ.read():
                    found.append(int(entry))
        except OSError:  # gone meanwhile, or another user's
            continue
    return found


def test_once_on_an_empty_outbox_says_so_loads_no_stream_and_leaves_nothing_running(link_server, outbox, tmp_path):
    """A cron job every minute on a station with nothing to send: the two summary lines, exit 0, and
    the run's processes (the sink, multiprocessing's helper) all gone soon after. It watches nothing,
    so the stream's libraries (reactivex and its asyncio, watchdog) are never loaded."""
    hook = tmp_path / "loaded-at-exit"
    hook.mkdir()
    loaded = tmp_path / "loaded.txt"
    (hook / "sitecustomize.py").write_text(LOADED_AT_EXIT.format(path=str(loaded)))
    marker = f"BEEMON_TEST_RUN_MARKER={tmp_path}"
    env = field_env(
        link_server,
        outbox,
        tmp_path,
        PYTHONPATH=f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        BEEMON_TEST_RUN_MARKER=str(tmp_path),
    )
    done = run_cli(env, "run", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.search(r"0 files to deliver \(0 B\) in ", done.stderr), done.stderr
    assert re.search(r"delivered 0 of 0 files \(0 B\) in \d+\.\d s", done.stderr), done.stderr
    assert error_lines(done.stderr) == [], done.stderr
    wait_until(lambda: not processes_with(marker), timeout=10)
    packages = set(loaded.read_text().split())
    assert "pipeline" in packages and "dynaconf" in packages  # the hook saw the command's own process
    assert packages & {"reactivex", "asyncio", "watchdog", "tqdm", "pyftpdlib", "prometheus_client"} == set()


def test_once_does_not_wait_for_a_login_the_server_never_answers(link_server, outbox, tmp_path):
    """A recording still open when the cron job runs, and a server that accepts but never answers
    (hung, or a stalled link): the run names the open file once its settle window is over, and
    ends then. The sink's session is still waiting for the greeting; it holds no transfer, so the
    stop does not wait for it (before: the stop deadline, here 30 s)."""
    open_one = outbox / "audio" / DAY / f"rpi4-test@{DAY}@15-00-00.wav"
    open_one.parent.mkdir(parents=True)
    silent = SilentPort()
    try:
        env = field_env(
            link_server,
            outbox,
            tmp_path,
            BEEMON_FTP__PORT=str(silent.port),
            BEEMON_FTP__TIMEOUT_SECONDS="30",
            BEEMON_UPLOAD__STOP_DEADLINE_SECONDS="30",
            BEEMON_UPLOAD__DEBOUNCE_SECONDS="1.5",  # a settle window of 3 s: the sink is connecting by then
        )
        with open_one.open("wb") as recorder:
            recorder.write(b"first half ")
            recorder.flush()
            started = time.monotonic()
            done = run_cli(env, "run", "--once", timeout=90)
            took = time.monotonic() - started
            recorder.write(b"second half")
    finally:
        silent.close()
    assert silent.connections, "the sink never connected: the scenario did not happen"
    assert done.returncode == 1, done.stderr
    assert took < 15, took
    assert error_lines(done.stderr) == [
        line for line in done.stderr.splitlines() if f"not delivered: {open_one} (still open for writing)" in line
    ], done.stderr
    assert len(error_lines(done.stderr)) == 1
    assert " WARNING " not in done.stderr, done.stderr
    assert outbox_files(outbox) == [f"audio/{DAY}/{open_one.name}"]
