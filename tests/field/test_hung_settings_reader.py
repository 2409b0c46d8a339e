"""A settings reader that never answers does not hang `run` (pipeline.app.settings_apart).

`run` reads its settings in a child, at start and on SIGHUP. On a station that child can hang: its
settings file on a network mount that stopped answering, a loader stuck. Here it hangs for real: the
site's `settings.toml` is a FIFO that nobody writes, so the child blocks opening it, as on a hung
mount, until it is killed. What the station must still do: at start, exit 1 with one line within the
bound (systemd starts it again); on SIGHUP, keep its settings and go on uploading; and stop at once
when told, even while a reload waits on its reader.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.app.settings_apart import READER_TIMEOUT_SECONDS, READER_TIMEOUT_TEST_VARIABLE
from tests.e2e.conftest import cli, uploader_env
from tests.field.test_lean_run import TODAY, commands, reader_of, recording, sinks
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of, start_uploader, watched_server  # noqa: F401

#: The bound the tests that wait it out give the reader (`READER_TIMEOUT_TEST_VARIABLE`).
SHORT_BOUND = 2


def hang_the_reader(site: Path) -> None:
    """Make the site's settings file a FIFO nobody writes: a reader blocks opening it until it is killed."""
    site.mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        (site / "settings.toml").unlink()
    os.mkfifo(site / "settings.toml")


def gone(pid: int) -> bool:
    """Whether `pid` no longer runs (ended and reaped, or a zombie nobody reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


@contextlib.contextmanager
def run_in_its_own_group(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """`run` started in a process group of its own (its settings reader is in it), the group killed on the way
    out whatever happened (on the old code a reader could outlive its parent)."""
    process = subprocess.Popen(
        cli("run", "--stats-interval", "0"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def test_run_whose_settings_reader_hangs_at_start_exits_1_in_one_line_within_the_bound(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    """At start, the reader blocks on its settings file: `run` kills it when the bound has passed, says so in
    one line (no password in it) and exits 1, which systemd restarts; the outbox is left as it was."""
    recording(outbox, 31)
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, **{READER_TIMEOUT_TEST_VARIABLE: str(SHORT_BOUND)})
    hang_the_reader(tmp_path / "site")
    started = time.monotonic()
    with run_in_its_own_group(env) as process:
        reader = wait_until(lambda: reader_of(process.pid), timeout=30)
        _, stderr = process.communicate(timeout=SHORT_BOUND + 30)
        took = time.monotonic() - started
    lines = stderr.strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1, (process.returncode, stderr)
    assert lines[0].startswith("beemon-uploader: the settings could not be read"), lines
    assert f"gave no answer within {SHORT_BOUND} s and was killed" in lines[0], lines
    assert server.password not in stderr
    assert took < SHORT_BOUND + 20, took
    assert gone(int(reader)), "the reader was left running"
    assert len(outbox_files(outbox)) == 1


def test_a_reload_whose_settings_reader_hangs_fails_after_the_bound_and_the_run_goes_on(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    """SIGHUP, and the reader blocks: files still arrive while it hangs; once the bound has passed it is
    killed, the reload fails in one line and the running settings stay; files still arrive; SIGTERM
    ends the run with 0 at once."""
    server = watched_server()
    run = start_uploader(uploader_env(server, outbox, tmp_path, **{READER_TIMEOUT_TEST_VARIABLE: str(SHORT_BOUND)}))
    wait_until(lambda: "watching" in run.output() and sinks(commands(run.group())), timeout=30)
    hang_the_reader(tmp_path / "site")
    os.kill(run.pid, signal.SIGHUP)
    reader = int(wait_until(lambda: reader_of(run.pid), timeout=30))

    during, during_data = recording(outbox, 32)  # while the reader hangs
    arrived = server.root / remote_of(f"{TODAY}/audio/{during.name}")
    wait_until(lambda: arrived.exists() and not during.exists(), timeout=20)
    wait_until(lambda: "reload failed, the running settings stay" in run.output(), timeout=SHORT_BOUND + 30)
    (failed,) = [line for line in run.output().splitlines() if "reload failed" in line]
    assert f"gave no answer within {SHORT_BOUND} s and was killed" in failed, failed
    wait_until(lambda: gone(reader), timeout=10)
    assert run.alive(), run.output()

    after, after_data = recording(outbox, 33)
    again = server.root / remote_of(f"{TODAY}/audio/{after.name}")
    wait_until(lambda: again.exists() and not after.exists(), timeout=20)
    stopping = time.monotonic()
    assert run.stop(timeout=30) == 0
    assert time.monotonic() - stopping < 10
    assert (arrived.read_bytes(), again.read_bytes()) == (during_data, after_data)
    assert outbox_files(outbox) == []
    assert server.password not in run.output()
    assert "Traceback" not in run.output(), run.output()


@pytest.mark.parametrize(
    ("stop_signal", "stopped_reader"),
    [(signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["SIGTERM", "SIGINT-reader-SIGSTOPped"],
)
def test_a_stop_during_a_reload_whose_reader_hangs_does_not_wait_for_the_bound(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
    stop_signal,
    stopped_reader,
):
    """SIGHUP, the reader blocks (and is even stopped with SIGSTOP), and the station is told to stop
    (systemctl stop: SIGTERM; Ctrl-C in a terminal: SIGINT) long before the bound (the default one):
    the stop wins, the reader is killed, the run ends with 0 in a few seconds, well inside systemd's
    TimeoutStopSec, and leaves no process behind."""
    server = watched_server()
    run = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: "watching" in run.output() and sinks(commands(run.group())), timeout=30)
    hang_the_reader(tmp_path / "site")
    os.kill(run.pid, signal.SIGHUP)
    reader = int(wait_until(lambda: reader_of(run.pid), timeout=30))
    if stopped_reader:
        os.kill(reader, signal.SIGSTOP)
    sent, data = recording(outbox, 34)  # the run still uploads while it waits on the reader
    arrived = server.root / remote_of(f"{TODAY}/audio/{sent.name}")
    wait_until(lambda: arrived.exists() and not sent.exists(), timeout=20)

    stopping = time.monotonic()
    try:
        os.kill(run.pid, stop_signal)
        code = run.wait(timeout=READER_TIMEOUT_SECONDS / 3)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(reader, signal.SIGKILL)  # the old code leaves it blocked
    assert code == 0, run.output()
    assert time.monotonic() - stopping < 10
    assert gone(reader), "the reader was left running"
    output = run.output()
    assert "reload abandoned, the uploader stops: the settings reader was killed" in output, output
    assert "reload failed" not in output and "stopped" in output and "Traceback" not in output, output
    assert arrived.read_bytes() == data


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_while_the_settings_are_read_at_start_exits_0_at_once(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
    stop_signal,
):
    """Told to stop while it still reads its settings at start (a supervisor's stop right after a start; the
    reader blocked here on its settings file, as on a slow card or a hung mount): `run` stops its reader and
    exits 0 at once, as a stop later does, not killed by the signal's default action; nothing was sent, the
    outbox is as it was."""
    recording(outbox, 34)
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path)  # the default bound: the stop must not wait for it
    hang_the_reader(tmp_path / "site")
    with run_in_its_own_group(env) as process:
        reader = int(wait_until(lambda: reader_of(process.pid), timeout=30))
        stopping = time.monotonic()
        os.kill(process.pid, stop_signal)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - stopping
    assert process.returncode == 0, (process.returncode, stderr)
    assert took < 10, took
    assert "stopped before it started" in stderr, stderr
    assert "Traceback" not in stderr, stderr
    wait_until(lambda: gone(reader), timeout=10)
    assert len(outbox_files(outbox)) == 1
    assert not any(server.root.rglob("*.wav"))
