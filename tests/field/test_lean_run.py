"""An idle `beemon-uploader run` costs what it uses: no multiprocessing resource tracker beside it, and no
settings library held by the parent that runs for months (issue 17).

The tracker is a third Python process (about 6.6 MB PSS) that multiprocessing starts for named
semaphores (its queues, events and locked arrays) and for every spawned child. The sink talks to
its parent over plain pipes and is launched without it, so the tree is the parent and the sink.
The scenario checks the promises that the plumbing carries: files arrive, a killed sink is rebuilt
(and the rebuilt one brings no tracker either), SIGTERM stops with exit code 0.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from datetime import date
from pathlib import Path

from tests.e2e.conftest import STATION, cli, run_cli, uploader_env
from tests.helpers import wait_until, write_file
from tests.reliability.conftest import outbox_files, remote_of, start_uploader, watched_server  # noqa: F401

TODAY = date.today().isoformat()


def commands(pids: list[int]) -> dict[int, str]:
    """The command line of each live pid (words joined by spaces)."""
    found = {}
    for pid in pids:
        try:
            words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        found[pid] = " ".join(word.decode(errors="replace") for word in words if word)
    return found


def sinks(tree: dict[int, str]) -> list[int]:
    return [pid for pid, command in tree.items() if "spawn_main" in command and "resource_tracker" not in command]


def trackers(tree: dict[int, str]) -> list[str]:
    return [command for command in tree.values() if "resource_tracker" in command]


def recording(outbox: Path, index: int) -> tuple[Path, bytes]:
    name = f"{STATION}@{TODAY}@11-00-{index:02d}.wav"
    data = b"RIFF lean %d " % index + os.urandom(20_000)
    return write_file(outbox / "audio" / TODAY / name, data), data


def test_an_idle_run_has_no_resource_tracker_and_still_delivers_rebuilds_and_stops(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="4")
    run = start_uploader(env)
    wait_until(lambda: "watching" in run.output() and sinks(commands(run.group())), timeout=30)

    first, first_data = recording(outbox, 1)
    arrived = server.root / remote_of(f"{TODAY}/audio/{first.name}")
    wait_until(lambda: arrived.exists() and not first.exists(), timeout=15)
    tree = commands(run.group())
    assert trackers(tree) == [], tree
    assert len(tree) == 2, tree  # the parent and the sink, nothing else

    (sink,) = sinks(tree)
    assert ignores(sink, signal.SIGIO)  # its deletes' leases set no signal of their own (`ignore_lease_breaks`)
    os.kill(sink, signal.SIGKILL)  # as the OOM killer would: the parent builds the pipeline again
    wait_until(lambda: [pid for pid in sinks(commands(run.group())) if pid != sink], timeout=40)
    second, second_data = recording(outbox, 2)
    again = server.root / remote_of(f"{TODAY}/audio/{second.name}")
    wait_until(lambda: again.exists() and not second.exists(), timeout=20)
    tree = commands(run.group())
    assert trackers(tree) == [] and len(tree) == 2, tree

    assert run.stop() == 0
    assert (arrived.read_bytes(), again.read_bytes()) == (first_data, second_data)
    assert outbox_files(outbox) == []
    assert "Traceback" not in run.output(), run.output()


def ignores(pid: int, number: int) -> bool:
    """Whether the process ignores the signal `number` (its SigIgn mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return bool(int(line.split()[1], 16) >> (number - 1) & 1)
    return False


#: Records, when the parent of `run` exits, every module it loaded. The settings reader and the sink are
#: started with `-c` code, so they are left out.
PARENT_MODULES_AT_EXIT = """
import atexit, sys

def _record():
    if sys.argv[:1] != ["-c"] and "pipeline.cli.main" in sys.modules:
        with open({path!r}, "w") as out:
            out.write("\\n".join(sorted(sys.modules)))

atexit.register(_record)
"""

#: Native modules that only the settings library brings: dynaconf's vendored box reads CSV and its TOML
#: writer imports decimal (nothing else of `run`'s parent imports either).
SETTINGS_ONLY_LIBRARIES = ("_decimal.", "_csv.")


def mapped(pid: int) -> set[str]:
    """The file names (no folder) that the process maps: the native modules it really loaded."""
    names = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith("/"):
            names.add(os.path.basename(fields[5]))
    return names


def settings_libraries(pid: int) -> list[str]:
    return sorted(name for name in mapped(pid) if name.startswith(SETTINGS_ONLY_LIBRARIES))


def test_an_idle_run_holds_no_settings_library_before_or_after_a_reload(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    """dynaconf with what it imports is some 6 MB that a station would hold for months to read its
    settings once: `run` reads them in a child that hands back plain values, at start and on SIGHUP.
    The parent still delivers, reloads a changed setting, and never loads the settings library, nor
    `importlib.metadata` (the version is a constant)."""
    hook = tmp_path / "modules-at-exit"
    hook.mkdir()
    loaded = tmp_path / "parent-modules.txt"
    (hook / "sitecustomize.py").write_text(PARENT_MODULES_AT_EXIT.format(path=str(loaded)))
    server = watched_server()
    env = uploader_env(
        server, outbox, tmp_path, PYTHONPATH=f"{hook}{os.pathsep}{os.environ.get('PYTHONPATH', '')}".rstrip(os.pathsep)
    )
    run = start_uploader(env)
    wait_until(lambda: "watching" in run.output() and sinks(commands(run.group())), timeout=30)
    first, first_data = recording(outbox, 11)
    arrived = server.root / remote_of(f"{TODAY}/audio/{first.name}")
    wait_until(lambda: arrived.exists() and not first.exists(), timeout=15)
    assert settings_libraries(run.pid) == [], mapped(run.pid)

    (tmp_path / "site" / "settings.toml").write_text("[testing.ftp]\ndynaconf_merge = true\ntimeout_seconds = 21\n")
    os.kill(run.pid, signal.SIGHUP)
    wait_until(lambda: re.search(r"reload: changed ftp\.\w+; rebuilding", run.output()), timeout=20)
    wait_until(lambda: run.output().count("watching ") >= 2 and sinks(commands(run.group())), timeout=30)
    second, second_data = recording(outbox, 12)
    again = server.root / remote_of(f"{TODAY}/audio/{second.name}")
    wait_until(lambda: again.exists() and not second.exists(), timeout=20)
    assert settings_libraries(run.pid) == [], mapped(run.pid)
    tree = commands(run.group())
    assert trackers(tree) == [] and len(tree) == 2, tree  # the settings reader is gone once it has read

    assert run.stop() == 0
    assert (arrived.read_bytes(), again.read_bytes()) == (first_data, second_data)
    modules = set(loaded.read_text().split())
    assert "pipeline.app.uploader" in modules  # the hook saw the parent
    assert sorted(name for name in modules if name.split(".")[0] in ("dynaconf", "jinja2")) == []
    assert {"settings.loader", "settings.validators", "importlib.metadata"} & modules == set()
    assert "Traceback" not in run.output(), run.output()


def test_run_with_a_bad_setting_still_says_it_in_one_line_and_exits_2(watched_server, outbox, tmp_path):  # noqa: F811
    """Read by the child, a bad setting stops `run` as before: its one line on stderr (not a traceback,
    not the child's exit code), exit code 2, nothing uploaded, nothing left running."""
    recording(outbox, 21)
    env = uploader_env(watched_server(), outbox, tmp_path, BEEMON_FTP__CONNECTIONS='"many"')
    done = run_cli(env, "run", "--stats-interval", "0", timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    assert lines[0].startswith("beemon-uploader: setting ftp.connections") and "BEEMON_FTP__CONNECTIONS" in lines[0]
    assert len(outbox_files(outbox)) == 1


def test_run_whose_settings_reader_is_killed_exits_1_so_that_systemd_restarts_it(watched_server, outbox, tmp_path):  # noqa: F811
    """The settings reader killed at start (the OOM killer on a Pi at boot): not a bad setting. Exit code 2
    would stop the service for good (`RestartPreventExitStatus=2`) and leave the outbox on the Pi; `run`
    says what happened in one line and exits 1, which systemd restarts."""
    recording(outbox, 22)
    legacy = tmp_path / "beemon-config.ini"
    os.mkfifo(legacy)  # the reader blocks opening it: alive until it is killed, whatever the machine's load
    env = uploader_env(watched_server(), outbox, tmp_path)
    process = subprocess.Popen(
        cli("run", "--stats-interval", "0", "--legacy-ini", str(legacy)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        os.kill(int(wait_until(lambda: reader_of(process.pid), timeout=60)), signal.SIGKILL)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = stderr.strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1, (process.returncode, stderr)
    assert lines[0].startswith("beemon-uploader: the settings could not be read") and "SIGKILL" in lines[0], lines
    assert len(outbox_files(outbox)) == 1


def reader_of(pid: int) -> int | None:
    """The settings reader among `pid`'s children, if one runs."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = [child for child, command in commands([int(c) for c in children]).items() if "settings_apart" in command]
    return found[0] if found else None


def test_a_reload_whose_settings_reader_is_killed_keeps_the_running_settings(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    """SIGHUP, and the reader is killed before it answers: the reload fails in one line, the run goes on
    with the settings it has and still delivers, and SIGTERM ends it with 0."""
    legacy = tmp_path / "beemon-config.ini"
    legacy.write_text("[ftp]\n")
    server = watched_server()
    run = start_uploader(
        uploader_env(server, outbox, tmp_path), "run", "--stats-interval", "0", "--legacy-ini", str(legacy)
    )
    wait_until(lambda: "watching" in run.output() and sinks(commands(run.group())), timeout=30)
    legacy.unlink()
    os.mkfifo(legacy)  # the next reader blocks opening it
    os.kill(run.pid, signal.SIGHUP)
    os.kill(int(wait_until(lambda: reader_of(run.pid), timeout=30)), signal.SIGKILL)
    wait_until(lambda: "reload failed, the running settings stay" in run.output(), timeout=20)
    assert "SIGKILL" in run.output() and run.alive(), run.output()
    sent, data = recording(outbox, 23)
    arrived = server.root / remote_of(f"{TODAY}/audio/{sent.name}")
    wait_until(lambda: arrived.exists() and not sent.exists(), timeout=20)
    assert run.stop() == 0
    assert arrived.read_bytes() == data
