"""Importing the packages starts nothing, opens nothing, imports no server library, and leaves the start
method to the orchestrator (which may set it afterwards, as the reference's orchestrator does)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
    print(sorted({name.split(".")[0] for name in sys.modules} & {"watchdog", "dynaconf", "settings", "pyftpdlib"}))
    """
)


def test_the_sink_process_loads_no_watcher_and_no_settings_library():
    """What the child process of the sink imports (spawn re-imports its module): the import contract
    states it for the code as written; this checks what Python really loads, parent packages included."""
    done = subprocess.run([sys.executable, "-c", SINK_PROBE], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]"], done.stdout
