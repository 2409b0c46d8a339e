"""systemd's view of `run`: READY=1, WATCHDOG=1 only while the uploader makes progress, STATUS=, STOPPING=1;
and its journal: a `<N>` priority on every line and no timestamp of our own."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.daemon.conftest import Daemon, NotifySocket, uploader_env
from tests.helpers import wait_until, write_file

TODAY = time.strftime("%Y-%m-%d")


def test_ready_after_watching_then_status_watchdog_and_stopping(
    make_server, outbox: Path, tmp_path: Path, notify_socket: NotifySocket, daemons
):
    server = make_server()
    write_file(outbox / "audio" / TODAY / f"rpi4-test@{TODAY}@10-00-00.wav", b"a" * 5000)
    env = uploader_env(server, outbox, tmp_path, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    daemon = Daemon(env, tmp_path / "run.log", "--stats-interval", "0.5")
    daemons.append(daemon)

    ready = wait_until(lambda: notify_socket.with_key("READY"), 30)
    assert ready[0]["READY"] == "1"
    log = daemon.log()
    assert "watching" in log, "READY=1 came before the outbox was watched"
    # STATUS= carries the statistics line; pings come every half WatchdogSec while healthy.
    wait_until(lambda: any("delivered 1" in m["STATUS"] for m in notify_socket.with_key("STATUS")), 30)
    start = notify_socket.mark()
    wait_until(lambda: len(notify_socket.with_key("WATCHDOG", since=start)) >= 3, 10)
    assert all(m["WATCHDOG"] == "1" for m in notify_socket.with_key("WATCHDOG"))

    assert daemon.stop() == 0
    assert notify_socket.with_key("STOPPING")[-1]["STOPPING"] == "1"


def test_watchdog_pings_stop_while_the_sink_is_frozen(
    make_server, outbox: Path, tmp_path: Path, notify_socket: NotifySocket, daemons
):
    server = make_server()
    env = uploader_env(server, outbox, tmp_path, NOTIFY_SOCKET=str(notify_socket.path), WATCHDOG_USEC="1000000")
    daemon = Daemon(env, tmp_path / "run.log")
    daemons.append(daemon)
    wait_until(lambda: notify_socket.with_key("READY"), 30)
    sink = daemon.sink_pid()
    start = notify_socket.mark()
    wait_until(lambda: notify_socket.with_key("WATCHDOG", since=start), 10)

    os.kill(sink, signal.SIGSTOP)
    try:
        daemon.wait_log(r"WARNING beemon\.service: not pinging the systemd watchdog: the sink process made no progress")
        silent_from = notify_socket.mark()
        time.sleep(1.6)  # three ping periods: none may come while the sink is frozen
        assert notify_socket.with_key("WATCHDOG", since=silent_from) == []
    finally:
        os.kill(sink, signal.SIGCONT)
    resumed = notify_socket.mark()
    wait_until(lambda: notify_socket.with_key("WATCHDOG", since=resumed), 15)
    assert daemon.stop() == 0


def test_journald_lines_carry_priority_and_no_timestamp(make_server, outbox: Path, tmp_path: Path, daemons):
    """With stderr the journal (JOURNAL_STREAM names it), `journalctl -p warning` finds the warnings: here the
    disk guard's, which fires once (the outbox's disk is always below 100 % free) and is a metric too."""
    server = make_server()
    env = uploader_env(server, outbox, tmp_path, JOURNAL_STREAM="this-log", BEEMON_WATCH__MIN_FREE_PERCENT="100")
    daemon = Daemon(env, tmp_path / "run.log", "--stats-interval", "0.5")
    daemons.append(daemon)
    daemon.wait_log(r"<4>beemon\.disk: the outbox's disk is almost full")
    daemon.wait_log(r"<6>beemon\.uploader: watching ")
    time.sleep(1.5)  # more disk checks: still one warning for one crossing
    assert daemon.stop() == 0
    lines = daemon.log().splitlines()
    assert lines and all(re.match(r"<[0-7]>beemon\.[a-z.]+: ", line) for line in lines), lines
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines)
    assert sum("almost full" in line for line in lines) == 1
