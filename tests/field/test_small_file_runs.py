"""Runs of many small files (issue 17's lean path): every promise of the full path still holds.

A station back online with a day of small recordings, or one writing many small files: the sink lends
its sessions to one loop that sends each small file in two flights ([SIZE final + STOR .part + the
bytes], then [RNFR, RNTO, SIZE final (+ EPSV)]). The real `beemon-uploader run` (or `run --once`)
against a real pyftpdlib server that misbehaves on cue: a refused STOR or RNTO, a dropped control
connection at either flight, a SIZE that shows a short copy, a different file already at a final
name, a local file that grows while it is sent, a server that stops answering, SIGTERM mid-run, and a
live recording arriving while the run drains the backlog. Each asserts what a person would check:
the bytes on the server, no `.part` left, what stays local, the exit code, the day's SHA256SUMS.

(The wire cannot tell the lean path from the full one: both send the same commands in the same
flights. `tests/sink/test_burst_loop.py` shows, in-process, that the lean loop carries such runs.)
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.e2e.conftest import STATION, run_cli, uploader_env
from tests.field.conftest import LONG_AGO, LinkHandler, field_env
from tests.field.test_once_manifests import manifest_text
from tests.helpers import lines_with, wait_until
from tests.reliability.conftest import (  # noqa: F401
    WatchedServer,
    outbox_files,
    remote_of,
    start_uploader,
    watched_server,
)
from tests.reliability.server import WatchedHandler

DAY = "2024-05-03"
TODAY_LIKE = "2024-05-04"  # the live recordings' day (a folder the backlog's sessions have not made)
#: a name of this many bytes leaves no room for `.<name>.part`: its temporary name is hashed
LONG_NAME_BYTES = 250


# --- a server with the faults these scenarios need, on top of tests.ftp_faults.Faults


@dataclass
class RunFaults:
    """Faults aimed at one file by a string in its path; each fires once."""

    #: after a successful rename onto a final name containing one of these, the server loses the file's second
    #: half (as a server whose disk filled during the write): the SIZE that follows shows the short copy
    shrink_after_rename: list[str] = field(default_factory=list)
    #: when a STOR for a path containing the key arrives, call the function first (in the server's thread)
    on_stor: dict[str, Callable[[], None]] = field(default_factory=dict)
    #: what fired, in order
    fired: list[tuple[str, str]] = field(default_factory=list)


class _RunFaultsMixin:
    run_faults: RunFaults = RunFaults()

    def ftp_STOR(self, file: str, mode: str = "w") -> object:
        faults = self.run_faults
        hit = next((key for key in faults.on_stor if key in file), None)
        if hit is not None:
            faults.on_stor.pop(hit)()
            faults.fired.append(("STOR", file))
        return super().ftp_STOR(file, mode)  # type: ignore[misc]

    def ftp_RNTO(self, path: str) -> object:
        result = super().ftp_RNTO(path)  # type: ignore[misc]
        faults = self.run_faults
        hit = next((key for key in faults.shrink_after_rename if key in path), None)
        if result and hit is not None and not os.path.basename(path).startswith("."):
            faults.shrink_after_rename.remove(hit)
            size = os.path.getsize(path)
            os.truncate(path, size // 2)
            faults.fired.append(("SHRINK", path))
        return result


class RunFaultsHandler(_RunFaultsMixin, WatchedHandler):
    pass


class LinkRunFaultsHandler(_RunFaultsMixin, LinkHandler):
    pass


# --- the station's files


def stamp(index: int) -> str:
    hours, rest = divmod(index, 3600)
    return f"{9 + hours:02d}-{rest // 60:02d}-{rest % 60:02d}"


def long_name(day: str, index: int) -> str:
    head, tail = f"{STATION}@{day}@{stamp(index)}-", ".wav"
    return head + "x" * (LONG_NAME_BYTES - len(head) - len(tail)) + tail


def small_files(
    folder: Path, count: int, *, day: str = DAY, old: bool = True, zero_every: int = 0, long_every: int = 0
) -> dict[Path, bytes]:
    """`count` small recordings (1-4 KiB; every `zero_every`-th empty; every `long_every`-th a name whose
    temporary name is hashed) written and closed under `folder/audio/<day>/`; by path, their bytes."""
    rng = random.Random(count * 7919 + zero_every)
    files: dict[Path, bytes] = {}
    for index in range(count):
        name = f"{STATION}@{day}@{stamp(index)}.wav"
        if long_every and index % long_every == long_every // 2:
            name = long_name(day, index)
        size = 0 if zero_every and index % zero_every == 1 else rng.randint(1024, 4096)
        data = os.urandom(size)
        path = folder / "audio" / day / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if old:
            os.utime(path, (LONG_AGO, LONG_AGO))
        files[path] = data
    return files


def remote(server: WatchedServer, local: Path) -> Path:
    """Where a recording of the outbox lands on `server` (`<root>/data/<station>/<day>/<sensor>/<name>`)."""
    day, sensor = local.parent.name, local.parent.parent.name
    return server.root / remote_of(f"{day}/{sensor}/{local.name}")


def parts_left(server: WatchedServer) -> list[str]:
    """Temporary names left on the server (recordings only: a manifest's own is the manifest's business)."""
    return sorted(str(p.relative_to(server.root)) for p in server.root.rglob(".*.part") if "SHA256SUMS" not in p.name)


def sums_on(server: WatchedServer, day: str) -> str | None:
    path = server.root / remote_of(f"{day}/SHA256SUMS")
    return path.read_text() if path.exists() else None


def by_manifest_name(files: dict[Path, bytes]) -> dict[str, bytes]:
    """The files as the day's SHA256SUMS names them (`audio/<name>`)."""
    return {f"{p.parent.parent.name}/{p.name}": data for p, data in files.items()}


def assert_all_delivered(server: WatchedServer, outbox: Path, files: dict[Path, bytes]) -> None:
    """Every file whole on the server, gone locally, no `.part` left, and nothing else of the station's there."""
    wrong = [
        p.name for p, data in files.items() if not remote(server, p).exists() or remote(server, p).read_bytes() != data
    ]
    assert wrong == [], f"{len(wrong)} file(s) missing or not whole on the server: {wrong[:5]}"
    assert outbox_files(outbox) == []
    assert parts_left(server) == []
    assert sorted(server.files()) == sorted(str(remote(server, p).relative_to(server.root)) for p in files)


def station_files(outbox: Path) -> list[str]:
    """The recordings left in the outbox (not the uploader's own records, `.beemon*`)."""
    return [name for name in outbox_files(outbox) if not name.startswith(".beemon")]


def never_lost(server: WatchedServer, files: dict[Path, bytes]) -> list[str]:
    """The files gone from the outbox without a whole copy on the server (must always be empty)."""
    return [
        p.name
        for p, data in files.items()
        if not p.exists() and not (remote(server, p).exists() and remote(server, p).read_bytes() == data)
    ]


def renamed_digests(server: WatchedServer, local: Path) -> list[str]:
    """The sha256 of each copy a rename made visible at `local`'s final name, in order."""
    relative = str(remote(server, local).relative_to(server.root))
    with server.watch.lock:
        return [digest for path, digest in server.watch.renames if path == relative]


def two_flights(server: WatchedServer, local: Path) -> bool:
    """Whether `local` went out as the lean path sends a file: [SIZE final, STOR .part] in one flight, then
    [RNFR .part, RNTO final, SIZE final] in one flight (the commands of one socket read of the server)."""
    final = "/" + str(remote(server, local).relative_to(server.root))
    journal, flights = list(server.faults.journal), list(server.faults.flights)
    stored = renamed = False
    for i, (command, argument) in enumerate(journal):
        if command == "STOR" and argument.endswith(".part") and i and journal[i - 1] == ("SIZE", final):
            stored = stored or flights[i - 1] == flights[i]
        if command == "RNTO" and argument == final and i + 1 < len(journal) and journal[i - 1][0] == "RNFR":
            renamed = renamed or (journal[i + 1] == ("SIZE", final) and flights[i - 1] == flights[i] == flights[i + 1])
    return stored and renamed


def once(server: WatchedServer, outbox: Path, tmp_path: Path, **env: str):
    return run_cli(field_env(server, outbox, tmp_path, **env), "run", "--once", timeout=120)


def middle(files: dict[Path, bytes], index: int) -> Path:
    """A file in the middle of the run (neither session's first: those go the full way, making the folder)."""
    return sorted(files)[index]


# --- 1. many small files moved into a running `run`


@pytest.mark.parametrize("count", [120, pytest.param(300, marks=pytest.mark.slow)])
def test_many_small_files_moved_into_a_running_run_all_arrive_whole_with_their_days_sums(
    count,
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    run = start_uploader(field_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="4"))
    wait_until(lambda: "watching" in run.output(), timeout=30)
    made = small_files(tmp_path / "recorder", count, zero_every=25, long_every=30)
    files = {}
    for path, data in made.items():  # moved in as a recorder finishing elsewhere does
        target = outbox / path.relative_to(tmp_path / "recorder")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        files[target] = data
    longs = sum(1 for p in files if len(p.name) == LONG_NAME_BYTES)
    assert sum(1 for data in files.values() if not data) >= 4 and longs >= 4

    wait_until(lambda: not outbox_files(outbox), timeout=60)
    wait_until(lambda: sums_on(server, DAY) == manifest_text(by_manifest_name(files)), timeout=30)
    assert run.stop() == 0
    assert_all_delivered(server, outbox, files)
    assert all(len(renamed_digests(server, p)) == 1 for p in files), "a file made visible more than once"
    assert not [s for s in server.faults.commands("STOR") if STATION in s and not os.path.basename(s).startswith(".")]
    hashed = [s for s in server.faults.commands("STOR") if len(os.path.basename(s)) == 1 + 32 + 5]
    assert len(hashed) == longs  # the long names' temporary names, hashed
    lean = [p for p in files if two_flights(server, p)]
    assert len(lean) >= len(files) - 8, f"only {len(lean)} of {len(files)} files went in two flights"


# --- 10. run --once on 200 small files


def test_once_on_200_small_files_delivers_all_and_exits_0(watched_server, outbox, tmp_path):  # noqa: F811
    server = watched_server()
    files = small_files(outbox, 200, zero_every=40)
    done = once(server, outbox, tmp_path)
    assert done.returncode == 0, done.stderr
    assert_all_delivered(server, outbox, files)
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))
    assert not list((outbox / ".beemon" / "manifests").glob("*.journal"))  # the day's manifest is up: nothing pending


# --- 2. a STOR refused in the middle of a run


@pytest.mark.parametrize(
    "reply",
    [
        "451 Local error in processing.",
        "421 Service not available, closing control connection.",
        pytest.param("553 Could not create file.", marks=pytest.mark.slow),
        pytest.param("550 Permission denied.", marks=pytest.mark.slow),
    ],
)
def test_a_stor_refused_once_mid_run_is_done_again_and_every_file_arrives(reply, watched_server, outbox, tmp_path):  # noqa: F811
    server = watched_server()
    files = small_files(outbox, 40)
    refused = middle(files, 20)
    server.faults.refuse_once_for.append(("STOR", f".{refused.name}.part", reply))
    done = once(server, outbox, tmp_path)
    assert done.returncode == 0, done.stderr
    assert server.faults.refuse_once_for == []  # the refusal was met
    assert len([s for s in server.faults.commands("STOR") if refused.name in s]) == 2
    assert_all_delivered(server, outbox, files)
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))


def test_a_stor_always_refused_for_one_name_leaves_that_file_local_and_delivers_the_rest(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    files = small_files(outbox, 40)
    refused = middle(files, 20)
    server.faults.deny_stor = (refused.name,)
    done = once(server, outbox, tmp_path, BEEMON_UPLOAD__RETRY_MAX_SECONDS="0.1")
    assert done.returncode == 1, done.stderr
    assert refused.name in done.stderr
    assert station_files(outbox) == [str(refused.relative_to(outbox))]
    assert refused.read_bytes() == files[refused]
    rest = {p: d for p, d in files.items() if p != refused}
    assert sorted(server.files()) == sorted(str(remote(server, p).relative_to(server.root)) for p in rest)
    assert all(remote(server, p).read_bytes() == d for p, d in rest.items())
    assert parts_left(server) == []
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(rest))


# --- 3. the control connection dropped at either flight


@pytest.mark.parametrize("flight", ["STOR", "RNFR"], ids=["at-the-store-flight", "at-the-rename-flight"])
def test_a_control_connection_dropped_mid_run_loses_nothing_and_all_arrive_after_reconnect(
    flight,
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    files = small_files(outbox, 40)
    cut = middle(files, 20)
    wire = server.watch.arm(flight, f".{cut.name}.part")  # the server hangs up as that command arrives
    wire.release.set()
    logins: list[int] = []
    states: list[list[str]] = []

    def watch_outbox() -> None:  # what the outbox and the server show while the run goes on
        while not stopped.is_set():
            states.append(never_lost(server, files))
            logins.append(len(server.watch.logins))
            time.sleep(0.01)

    stopped = threading.Event()
    watcher = threading.Thread(target=watch_outbox, daemon=True)
    watcher.start()
    try:
        done = once(server, outbox, tmp_path)
    finally:
        stopped.set()
        watcher.join(5)
    assert wire.hit.is_set(), "the server never hung up"
    assert done.returncode == 0, done.stderr
    assert [lost for lost in states if lost] == []  # no file gone locally without its whole copy, at any moment
    assert len(server.watch.logins) >= 3  # two sessions, and the one that came back
    assert_all_delivered(server, outbox, files)
    assert renamed_digests(server, cut) == [hashlib.sha256(files[cut]).hexdigest()]
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))


@pytest.mark.parametrize(
    "reply",
    ["426 Data connection cut by the test server.", "421 Service going down."],
    ids=["426", "421-and-close"],
)
def test_a_data_connection_cut_mid_run_leaves_the_file_local_until_it_is_sent_again_whole(
    reply,
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    files = small_files(outbox, 60)
    run = start_uploader(field_env(server, outbox, tmp_path), "run", "--once")
    wait_until(lambda: len(server.watch.renames) >= 10, timeout=30)
    server.faults.cut_reply = reply
    server.faults.cut_after_bytes, server.faults.cuts = 500, 1  # the next transfer is cut after 500 bytes
    assert run.wait(60) == 0, run.output()
    assert server.faults.cuts == 0, "no transfer was cut: the run was over"
    assert never_lost(server, files) == []
    assert_all_delivered(server, outbox, files)
    assert all(len(renamed_digests(server, p)) == 1 for p in files), "a copy made visible twice (or a short one)"
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))


# --- 4. a rename refused once


@pytest.mark.parametrize(
    ("command", "reply"),
    [("RNTO", "553 Renaming not allowed."), ("RNFR", "421 Service not available, closing control connection.")],
    ids=["rnto-553", "rnfr-421"],
)
def test_a_rename_refused_once_mid_run_is_done_again_and_the_file_goes_only_then(
    command,
    reply,
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    files = small_files(outbox, 40)
    refused = middle(files, 20)
    server.faults.refuse_once_for.append((command, refused.name, reply))
    done = once(server, outbox, tmp_path)
    assert done.returncode == 0, done.stderr
    assert server.faults.refuse_once_for == []
    rnfrs = [a for a in server.faults.commands("RNFR") if a.endswith(f".{refused.name}.part")]
    assert len(rnfrs) == 2  # refused, then done again
    assert renamed_digests(server, refused) == [hashlib.sha256(files[refused]).hexdigest()]
    assert_all_delivered(server, outbox, files)
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))


# --- 5. the SIZE after the rename shows a short copy once


def test_a_short_copy_after_the_rename_keeps_the_file_until_a_whole_copy_is_verified(watched_server, outbox, tmp_path):  # noqa: F811
    faults = RunFaults()
    server = watched_server(handler=RunFaultsHandler, run_faults=faults)
    files = small_files(outbox, 40)
    shrunk = middle(files, 20)
    faults.shrink_after_rename.append(shrunk.name)
    seen_short = []

    def watch() -> bool:  # while the server holds the short copy, the local file must still be there
        target = remote(server, shrunk)
        if faults.fired and target.exists() and target.read_bytes() != files[shrunk]:
            seen_short.append(shrunk.exists())
        return False

    done_box: list = []
    runner = threading.Thread(target=lambda: done_box.append(once(server, outbox, tmp_path)), daemon=True)
    runner.start()
    deadline = time.monotonic() + 120
    while runner.is_alive() and time.monotonic() < deadline:
        watch()
        time.sleep(0.005)
    runner.join(1)
    (done,) = done_box
    assert faults.fired == [("SHRINK", str(remote(server, shrunk)))]
    assert done.returncode == 0, done.stderr
    assert all(seen_short), "the local file went while the server held a short copy"
    whole = hashlib.sha256(files[shrunk]).hexdigest()
    assert renamed_digests(server, shrunk) == [whole, whole]  # the second rename put the whole copy there
    assert_all_delivered(server, outbox, files)
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))


# --- 6. the overwrite guard


def test_a_different_file_already_at_a_final_name_is_not_overwritten_and_the_local_one_stays(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    files = small_files(outbox, 40)
    taken = middle(files, 20)
    theirs = b"someone else's recording " * 10
    assert len(theirs) != len(files[taken])
    remote(server, taken).parent.mkdir(parents=True)
    remote(server, taken).write_bytes(theirs)
    done = once(server, outbox, tmp_path)
    assert done.returncode == 1, done.stderr
    assert remote(server, taken).read_bytes() == theirs
    assert renamed_digests(server, taken) == []
    assert station_files(outbox) == [str(taken.relative_to(outbox))]
    assert taken.read_bytes() == files[taken]
    assert parts_left(server) == []
    rest = {p: d for p, d in files.items() if p != taken}
    assert all(remote(server, p).read_bytes() == d for p, d in rest.items())
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(rest))


# --- 7. a local file that grows while it is sent


def test_a_file_appended_while_its_run_sends_it_never_shows_a_truncated_copy_and_arrives_whole(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    faults = RunFaults()
    server = watched_server(handler=RunFaultsHandler, run_faults=faults)
    files = small_files(outbox, 40)
    growing = middle(files, 20)
    more = os.urandom(1500)

    def append() -> None:  # the recorder writes more while the server takes the STOR of the first bytes
        with open(growing, "ab") as handle:
            handle.write(more)
        os.utime(growing, (LONG_AGO + 10, LONG_AGO + 10))

    faults.on_stor[f".{growing.name}.part"] = append
    done = once(server, outbox, tmp_path)
    assert [kind for kind, _ in faults.fired] == ["STOR"]
    assert done.returncode == 0, done.stderr
    files[growing] += more
    assert renamed_digests(server, growing) == [hashlib.sha256(files[growing]).hexdigest()]
    assert_all_delivered(server, outbox, files)
    assert sums_on(server, DAY) == manifest_text(by_manifest_name(files))


# --- 8. a server that stops answering mid-run


def test_a_server_that_stops_answering_mid_run_loses_nothing_and_gets_everything_once_it_answers(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server(handler=LinkRunFaultsHandler, reply_delay=0.02, run_faults=RunFaults())
    files = small_files(outbox, 80)
    run = start_uploader(field_env(server, outbox, tmp_path, BEEMON_FTP__TIMEOUT_SECONDS="1"))
    wait_until(lambda: len(server.watch.renames) >= 15, timeout=30)
    gate = threading.Event()
    server.faults.hold["RNFR"] = gate  # every rename waits: the server says nothing more
    logins = len(server.watch.logins)
    try:
        wait_until(lambda: len(server.watch.logins) >= logins + 2, timeout=20)  # the sessions timed out, came back
        assert never_lost(server, files) == []
        left = outbox_files(outbox)
        assert left, "the run finished before the server stalled"
    finally:
        gate.set()
    wait_until(lambda: not outbox_files(outbox), timeout=60)
    wait_until(lambda: sums_on(server, DAY) == manifest_text(by_manifest_name(files)), timeout=30)
    assert run.stop() == 0
    assert never_lost(server, files) == []
    assert_all_delivered(server, outbox, files)


# --- 9. SIGTERM (or a power cut) in the middle of a long run


@pytest.mark.parametrize("stop", ["sigterm", "power-cut"])
def test_a_stop_mid_run_deletes_nothing_without_its_copy_and_its_journal_line(
    stop,
    link_server,
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    files = small_files(outbox, 120)
    env = field_env(link_server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="4")
    run = start_uploader(env)
    wait_until(lambda: len(link_server.watch.renames) >= 30, timeout=30)
    began = time.monotonic()
    if stop == "sigterm":
        assert run.stop(timeout=20) == 0
        assert time.monotonic() - began < 10
    else:
        run.kill()  # the whole group at once: the sink and its loop threads with it
    assert never_lost(link_server, files) == []
    gone = [p for p in files if not p.exists()]
    assert 20 <= len(gone) < len(files), len(gone)  # (a power cut may come between a rename and its delete)
    journaled = "".join(p.read_text() for p in (outbox / ".beemon" / "manifests").glob("*.journal"))
    for path in gone:  # every file deleted has its line (sha256, size, name) in the day's journal, written before
        data = files[path]
        line = f"{hashlib.sha256(data).hexdigest()} {len(data)} audio/{path.name}\n"
        assert line in journaled or path.name in (sums_on(link_server, DAY) or ""), line

    again = run_cli(env, "run", "--once", timeout=120)  # the next start finishes the day
    assert again.returncode == 0, again.stderr
    assert_all_delivered(link_server, outbox, files)
    assert sums_on(link_server, DAY) == manifest_text(by_manifest_name(files))


# --- 11. a live recording while the backlog's run goes on


def test_a_live_small_file_arriving_during_a_backlog_run_is_delivered_promptly(
    link_server,
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    files = small_files(outbox, 160)
    run = start_uploader(field_env(link_server, outbox, tmp_path))
    wait_until(lambda: len(link_server.watch.renames) >= 20, timeout=30)
    live = small_files(tmp_path / "recorder", 1, day=TODAY_LIKE, old=False)
    ((made, data),) = live.items()
    target = outbox / made.relative_to(tmp_path / "recorder")
    target.parent.mkdir(parents=True)
    written = time.monotonic()
    os.replace(made, target)
    arrived = remote(link_server, target)
    wait_until(lambda: arrived.exists() and arrived.read_bytes() == data, timeout=10)
    took = time.monotonic() - written
    backlog_left = len([p for p in files if p.exists()])
    assert took < 0.2 + 2.0, f"the live file took {took:.2f} s"
    assert backlog_left >= 40, f"the backlog was nearly done ({backlog_left} left): the test proves nothing"
    assert run.stop() == 0
    files[target] = data
    assert never_lost(link_server, files) == []


# --- vsftpd: a run of small files, and the overwrite guard, on a server the station may really meet


def test_once_on_small_files_to_vsftpd_delivers_all_and_never_overwrites_a_different_file(vsftpd, outbox, tmp_path):
    server = vsftpd()
    files = small_files(outbox, 80, zero_every=20, long_every=25)
    taken = middle(files, 40)
    final = server.root / STATION / DAY / "audio"
    final.mkdir(parents=True)
    theirs = b"another station's bytes " * 7
    (final / taken.name).write_bytes(theirs)
    target = SimpleNamespace(server=SimpleNamespace(port=server.port), username=server.username, password="anonymous")
    env = uploader_env(target, outbox, tmp_path, BEEMON_FTP__REMOTE_ROOT=server.remote_root)
    done = run_cli(env, "run", "--once", "--max-retries", "1", timeout=90)
    assert done.returncode == 1, done.stderr  # the one file the guard kept back
    assert (final / taken.name).read_bytes() == theirs
    assert station_files(outbox) == [str(taken.relative_to(outbox))] and taken.read_bytes() == files[taken]
    rest = {p: d for p, d in files.items() if p != taken}
    landed = {p.name: p.read_bytes() for p in final.iterdir() if p.name != taken.name}
    assert landed == {p.name: d for p, d in rest.items()}  # whole, and no `.part` left
    assert (server.root / STATION / DAY / "SHA256SUMS").read_text() == manifest_text(by_manifest_name(rest))


def test_sigterm_while_the_server_stalls_a_run_cuts_it_at_the_stop_deadline_and_loses_nothing(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    """The lean loop's sessions are cut at the stop deadline like any transfer, not held for the FTP timeout."""
    server = watched_server()
    files = small_files(outbox, 80)
    env = field_env(
        server, outbox, tmp_path, BEEMON_FTP__TIMEOUT_SECONDS="30", BEEMON_UPLOAD__STOP_DEADLINE_SECONDS="1"
    )
    run = start_uploader(env)
    wait_until(lambda: len(server.watch.renames) >= 10, timeout=30)
    gate = threading.Event()
    server.faults.hold["RNFR"] = gate  # the server takes the renames' flight and says nothing more
    try:
        renames = len(server.faults.commands("RNFR"))
        wait_until(lambda: len(server.faults.commands("RNFR")) >= renames + 2, timeout=10)
        began = time.monotonic()
        code = run.stop(timeout=30)
        took = time.monotonic() - began
    finally:
        gate.set()
    assert code == 0
    assert took < 1 + 5, f"stopped in {took:.1f} s"  # the deadline, and the cut's grace at most
    assert never_lost(server, files) == []
    assert 10 <= len([p for p in files if not p.exists()]) < len(files)


# --- a next file that cannot even be looked at when its run takes it


def test_a_next_file_that_cannot_be_looked_at_is_reported_and_the_run_goes_on(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    """The lean run takes its next file during the current one's transfer; a file that cannot be stat'ed then
    (replaced by a symlink loop: ELOOP) must be reported as the full path reports it, not lost with the loop."""
    faults = RunFaults()
    server = watched_server(handler=RunFaultsHandler, run_faults=faults)
    files = small_files(outbox, 30)
    ordered = sorted(files)
    looped = ordered[10:20]

    def loop_them() -> None:  # while the server takes file 20, files 10-19 become symlink loops
        for path in looped:
            path.unlink()
            os.symlink(path.name, path)

    faults.on_stor[f".{ordered[20].name}.part"] = loop_them
    env = field_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1", BEEMON_UPLOAD__RETRY_MAX_SECONDS="0.1")
    run = start_uploader(env, "run", "--once", "--log-level", "DEBUG")
    try:
        code = run.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"run --once still running after 20 s: {lines_with(run.output(), 'ERROR')}")
    done = SimpleNamespace(returncode=code, stderr=run.output())
    assert [kind for kind, _ in faults.fired] == ["STOR"]
    assert done.returncode == 1, done.stderr
    assert sorted(station_files(outbox)) == sorted(str(p.relative_to(outbox)) for p in looped)  # the loops stay
    rest = {p: d for p, d in files.items() if p not in looped}
    assert all(remote(server, p).read_bytes() == d for p, d in rest.items())
    assert parts_left(server) == []
