"""Two uploaders on one outbox: the second (`run`, `run --once`) leaves at once, exit 2, naming the first's PID.

Two of them sent every file twice and resumed each other's temporary files; the lock on
`<outbox>/.beemon/lock` lets only one work an outbox, and dies with its holder (even a SIGKILL).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal

from tests.e2e.conftest import run_cli, uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files
from tests.reliability.test_server_link import wav


def busy_line(pid: int, outbox) -> str:
    return (
        f"beemon-uploader: another beemon-uploader (PID {pid}) is already working the outbox {outbox}"
        f" (lock {outbox}/.beemon/lock): only one may run per outbox; stop that one first, or give this one"
        " another local_output_directory"
    )


def test_a_second_run_and_a_run_once_beside_a_daemon_exit_2_naming_it_and_nothing_is_sent_twice(
    watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    held = server.watch.hold_transfers(after_bytes=10_000)  # the daemon's first transfer waits: files stay queued
    expected = dict(wav(outbox, i) for i in range(4))
    env = uploader_env(server, outbox, tmp_path)
    daemon = start_uploader(env)
    wait_until(lambda: server.watch.stores, timeout=20)

    once = run_cli(env, "run", "--once")
    second = run_cli(env, "run", timeout=30)  # would run for ever if it started

    assert (once.returncode, second.returncode) == (2, 2), once.stderr + second.stderr
    for done in (once, second):
        assert done.stdout == ""
        assert done.stderr.splitlines() == [busy_line(daemon.pid, outbox)]
    held.set()
    wait_until(lambda: server.files() == expected and outbox_files(outbox) == [], timeout=30)
    assert daemon.stop() == 0
    stored = collections.Counter(os.path.basename(path) for _, path in server.watch.stores)
    assert all(count == 1 for count in stored.values()), stored  # each file sent once, by the daemon
    assert len(stored) == len(expected)


def test_after_a_sigkill_of_the_holder_a_new_uploader_starts_and_delivers(
    watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_UPLOAD__IGNORE_PATTERNS="[]")  # .beemon/ is never sent
    first = start_uploader(env)
    expected = dict([wav(outbox, 0)])
    wait_until(lambda: server.files() == expected, timeout=20)
    lock = outbox / ".beemon" / "lock"
    assert lock.read_text().strip() == str(first.pid)

    os.kill(first.pid, signal.SIGKILL)  # the main process only: its sink child may linger, it holds no lock
    first.process.wait(10)
    second = start_uploader(env)
    expected.update([wav(outbox, 1)])
    try:
        wait_until(lambda: server.files() == expected and outbox_files(outbox) == [], timeout=30)
        assert lock.read_text().strip() == str(second.pid)
        assert second.alive()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(first.pid, signal.SIGKILL)  # the first one's orphaned sink, if still there
    assert second.stop() == 0
