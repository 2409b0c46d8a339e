"""`run --once` starts its sink process before it reads the settings (`pipeline.sink.prestart`), so that the
two start-ups overlap. The station's side of it: the upload starts sooner after a slow start, and a run
that ends before the sink got its task (a bad setting, a killed parent) leaves no process and prints
one line, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pipeline.outbox.lock import OutboxLock
from tests.e2e.conftest import cli, run_cli
from tests.field.conftest import field_env, recording
from tests.field.test_once import DAY, error_lines, processes_with
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of

#: How long each start-up takes in these scenarios (made slow by a `sitecustomize`, see `SLOW_STARTS`).
SLOW_SECONDS = 2.0
#: The sink's start-up in the bad-setting scenario: the run must end well before it.
SLOWER_SECONDS = 8.0

#: A station whose SD card is slow: every spawned child (the sink) takes `seconds` to start its interpreter,
#: and the command's own process `read_seconds` to read its settings. Each notes when (wall clock) in
#: `marks`: "sink-started", "reading" (the settings read begins), "read" (it ended).
SLOW_STARTS = """
import sys, time

def _mark(name):
    with open({marks!r} + "/" + name, "a") as out:
        out.write(repr(time.time()) + "\\n")

if "--multiprocessing-fork" in sys.argv:
    _mark("sink-started")
    time.sleep(float({seconds!r}))
else:
    import settings

    _read = settings.build_settings

    def _slow_read(*args, **kwargs):
        _mark("reading")
        time.sleep(float({read_seconds!r}))
        try:
            return _read(*args, **kwargs)
        finally:
            _mark("read")

    settings.build_settings = _slow_read
"""


def mark(tmp_path: Path, name: str) -> float | None:
    """When the run first noted `name` (see `SLOW_STARTS`), None if it never did (or is still writing it)."""
    path = tmp_path / "marks" / name
    words = path.read_text().split() if path.exists() else []
    return float(words[0]) if words else None  # opened but not yet written: not noted yet


def slow_env(
    link_server,
    outbox: Path,
    tmp_path: Path,
    *,
    seconds: float = SLOW_SECONDS,
    read_seconds: float = SLOW_SECONDS,
    **overrides: str,
) -> dict[str, str]:
    """The scenario's environment: slow start-ups, and a marker that every process of the run inherits."""
    hook = tmp_path / "slow-starts"
    hook.mkdir()
    (tmp_path / "marks").mkdir()
    (hook / "sitecustomize.py").write_text(
        SLOW_STARTS.format(seconds=seconds, read_seconds=read_seconds, marks=str(tmp_path / "marks"))
    )
    return field_env(
        link_server,
        outbox,
        tmp_path,
        PYTHONPATH=f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        BEEMON_TEST_RUN_MARKER=str(tmp_path),
        **overrides,
    )


def run_once_into(output: Path, env: dict[str, str]) -> int:
    """`run --once` with its stdout and stderr into `output`; its exit code (killed if it takes over 30 s)."""
    with output.open("w") as log:
        process = subprocess.Popen(cli("run", "--once"), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        return process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()


def test_the_sinks_start_up_overlaps_reading_the_settings(link_server, outbox, tmp_path):
    """Both start-ups take 2 s: the sink's interpreter starts while the settings are still being read (not once
    they are), and the file is delivered as usual."""
    path = recording(outbox, "audio", DAY, "16-00-00", 30_000, old=True)
    data = path.read_bytes()
    done = run_cli(slow_env(link_server, outbox, tmp_path), "run", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    reading, read, sink_started = mark(tmp_path, "reading"), mark(tmp_path, "read"), mark(tmp_path, "sink-started")
    assert reading is not None and read is not None and sink_started is not None
    assert sink_started < read, (reading, read, sink_started)
    assert (link_server.root / remote_of(f"{DAY}/audio/{path.name}")).read_bytes() == data
    assert outbox_files(outbox) == []


def test_once_with_a_bad_setting_says_so_and_leaves_no_process_behind(link_server, outbox, tmp_path):
    """A setting that cannot work, found while the early sink is still starting (slowly: 8 s): one line
    naming it, exit code 2, at once (not after the sink's start-up), nothing uploaded, and no process of
    the run left when it exits."""
    path = recording(outbox, "audio", DAY, "16-10-00", 10_000, old=True)
    env = slow_env(link_server, outbox, tmp_path, seconds=SLOWER_SECONDS, read_seconds=0, BEEMON_FTP__CONNECTIONS="0")
    output = tmp_path / "once.log"
    started = time.monotonic()
    code = run_once_into(output, env)
    took = time.monotonic() - started
    assert processes_with(f"BEEMON_TEST_RUN_MARKER={tmp_path}") == []  # at its exit, not some time after
    assert code == 2, output.read_text()
    assert output.read_text().splitlines() == [
        "beemon-uploader: setting ftp.connections = 0 is not valid: it must be an integer from 1 to 32;"
        " fix it in settings.toml or BEEMON_FTP__CONNECTIONS"
    ]
    assert took < SLOWER_SECONDS, took
    assert link_server.watch.logins == []
    assert outbox_files(outbox) == [f"audio/{DAY}/{path.name}"]


def test_a_killed_once_leaves_its_early_sink_to_exit_without_a_traceback(link_server, outbox, tmp_path):
    """The run is killed (SIGKILL: the OOM killer, a watchdog) while it reads its settings: the sink process,
    started and still waiting for its task, exits on its own, quietly; the files stay in the outbox."""
    recording(outbox, "audio", DAY, "16-20-00", 10_000, old=True)
    marker = f"BEEMON_TEST_RUN_MARKER={tmp_path}"
    env = slow_env(link_server, outbox, tmp_path)
    output = tmp_path / "once.log"
    with output.open("w") as log:
        process = subprocess.Popen(cli("run", "--once"), env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: mark(tmp_path, "reading") is not None, timeout=30)
        assert len(processes_with(marker)) == 2  # the command and its early sink
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        wait_until(lambda: processes_with(marker) == [], timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    text = output.read_text()
    assert error_lines(text) == [] and "Traceback" not in text, text
    assert link_server.watch.logins == []
    assert len(outbox_files(outbox)) == 1


def test_once_while_another_uploader_works_the_outbox_leaves_no_process_behind(link_server, outbox, tmp_path):
    """The outbox is in use (a daemon, or a cron job still running): the early sink is stopped, the run says
    who holds the outbox in one line, exit code 2, nothing uploaded, and no process of the run is left."""
    recording(outbox, "audio", DAY, "16-30-00", 10_000, old=True)
    env = slow_env(link_server, outbox, tmp_path, seconds=SLOWER_SECONDS, read_seconds=0)
    output = tmp_path / "once.log"
    with OutboxLock(str(outbox)):
        code = run_once_into(output, env)
    assert processes_with(f"BEEMON_TEST_RUN_MARKER={tmp_path}") == []
    assert code == 2, output.read_text()
    [line] = output.read_text().splitlines()
    assert line.startswith("beemon-uploader: ") and f"(PID {os.getpid()})" in line, line
    assert link_server.watch.logins == []
    assert len(outbox_files(outbox)) == 1
