"""Importing the packages starts nothing, opens nothing, imports no server library, and leaves the start
method to the orchestrator (which may set it afterwards, as the reference's orchestrator does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.benchmarks.procs import descendants
from tests.helpers import free_port, wait_until

#: Libraries only the parent uses (the watcher, the stream, the settings, the test server, metrics, progress bars).
PARENT_ONLY = ("reactivex", "asyncio", "watchdog", "dynaconf", "settings", "pyftpdlib", "prometheus_client", "tqdm")

PROBE = textwrap.dedent(
    """
    import os, sys, threading, multiprocessing
    fds = sorted(os.listdir("/proc/self/fd"))
    import pipeline, operators, settings
    import pipeline.app.uploader, pipeline.sink.process, pipeline.stream.watch, pipeline.cli.main, pipeline.cli.once
    from pipeline import Uploader, UploadHelper, UploadSession, UploadHandler
    opened = sorted(set(os.listdir("/proc/self/fd")) - set(fds))
    print("threads", threading.active_count())
    print("fds", opened)
    print("server", sorted(name for name in sys.modules if name.split(".")[0] == "pyftpdlib"))
    multiprocessing.set_start_method("spawn")
    print("start method", multiprocessing.get_start_method())
    """
)


def test_imports_start_nothing_and_leave_the_start_method_to_the_caller():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["threads 1", "fds []", "server []", "start method spawn"], done.stdout


SINK_PROBE = textwrap.dedent(
    """
    import sys
    import pipeline.sink.process
    print(sorted({{name.split(".")[0] for name in sys.modules}} & {parent_only}))
    """
).format(parent_only=set(PARENT_ONLY))


def test_the_sink_process_loads_no_watcher_no_stream_and_no_settings_library():
    """What the child process of the sink imports (spawn re-imports its module): the import contract
    states it for the code as written; this checks what Python really loads, parent packages included."""
    done = subprocess.run([sys.executable, "-c", SINK_PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]"], done.stdout


def test_the_real_sink_of_run_maps_none_of_the_parents_libraries(tmp_path: Path):
    """`beemon-uploader run` as systemd starts it: the sink is spawned without running the command line again.

    A child that ran it would hold the stream's reactivex (its asyncio maps `_asyncio`) and dynaconf's
    libraries (`_decimal`, `_csv`); the sink's own imports need none of them. Read from /proc/PID/maps,
    which shows the native modules a process really loaded."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
    env.update(
        BEEMON_ENV="testing",
        BEEMON_CONFIG_DIR=str(tmp_path),
        BEEMON_LOCAL_OUTPUT_DIRECTORY=str(outbox),
        BEEMON_STATION="probe",
        BEEMON_FTP__HOST="127.0.0.1",
        BEEMON_FTP__PORT=str(free_port()),  # nobody there: the sink keeps trying, idle
        BEEMON_FTP__USERNAME="probe",
        BEEMON_FTP__PASSWORD="probe-secret",
    )
    # The console script, not `python -m pipeline.cli`: spawn never runs a `__main__` module of a package
    # again, but it does run a main script (the one systemd's unit starts).
    script = Path(sys.executable).with_name("beemon-uploader")
    assert script.exists(), f"{script} is missing: install the project (make .venv/.installed-stamp)"
    run = subprocess.Popen([str(script), "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        sink = wait_until(lambda: _sink_of(run.pid), timeout=30)
        wait_until(lambda: "_ssl" in _native_modules(sink), timeout=30)  # its imports are done
        native = _native_modules(sink)
        assert not native & {"_asyncio", "_decimal", "_csv"}, sorted(native)
        assert "_asyncio" in _native_modules(run.pid)  # the parent does hold the stream
    finally:
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)


def _sink_of(pid: int) -> int | None:
    for child in descendants(pid)[1:]:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as file:
                if b"spawn_main" in file.read():
                    return child
        except OSError:  # gone meanwhile (`run`'s settings reader lives a fraction of a second)
            continue
    return None


def _native_modules(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as file:
        names = {line.rsplit("/", 1)[-1].strip() for line in file if ".cpython-" in line}
    return {name.split(".", 1)[0] for name in names}
