"""SIGKILL the uploader again and again while a station writes; in the end nothing is lost or half-shown.

The aimed kills stop the server's thread at the point named (a tripwire), SIGKILL the uploader's
process group there, and only then let the server go on, so each window is hit every time:
mid-STOR, after the STOR but before the rename, after the rename but before the local delete.
The random kills come after a random number of server commands.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli, uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.station import Station

#: (point, path match, bytes): the windows each torture run hits on purpose.
AIMED = [
    ("DATA", ".h264", 300_000),  # during a STOR of a video
    ("RNFR", "", 0),  # the STOR is complete, the rename not yet made
    ("SIZE", "", 0),  # renamed onto the final name, local file not yet deleted
    ("DATA", ".wav", 20_000),
    ("RNFR", ".csv", 0),
]


@pytest.mark.timeout(900)
def test_sigkill_at_every_step_loses_nothing_and_shows_nothing_half_done(
    scale, watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    station = Station(outbox, scale)
    backlog = scale.files // 2
    station.backlog(backlog)
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="3")
    rng = random.Random(5)
    station.start(backlog, every=0.01)
    plan = AIMED + [("random", "", 0)] * scale.kills
    runs = []
    for point, match, size in plan:
        run = start_uploader(env)
        runs.append(run)
        if point == "random":
            # after a random number of server commands: anywhere in the conversation
            target, deadline = len(server.faults.journal) + rng.randint(3, 300), time.monotonic() + 10
            wait_until(lambda t=target, d=deadline: len(server.faults.journal) >= t or time.monotonic() > d, timeout=15)
            run.kill()
            continue
        wire = server.watch.arm(point, match, size)
        try:
            assert wire.hit.wait(30), f"tripwire {point} {match} never fired; log:\n{run.output()}"
            run.kill()
        finally:
            wire.release.set()
    station.finish()

    final = start_uploader(env)
    runs.append(final)

    def all_delivered() -> bool:  # the cheap check first: hashing the server's files takes a while at soak size
        today = [str(station.today_csv.relative_to(outbox))]
        return outbox_files(outbox) == today and server.digests() == station.expected

    try:
        wait_until(all_delivered, timeout=120 if scale.name == "soak" else 40)
    except AssertionError:
        digests = server.digests()
        missing = sorted(set(station.expected) - set(digests))
        extra = sorted(set(digests) - set(station.expected))
        differ = sorted(p for p in digests if p in station.expected and digests[p] != station.expected[p])
        raise AssertionError(
            f"missing {missing[:10]} ({len(missing)}), extra {extra[:10]}, differ {differ[:10]}, "
            f"outbox {outbox_files(outbox)[:10]}\n{final.output()[-3000:]}"
        ) from None
    assert final.stop() == 0, final.output()

    # Every file whole, exactly where it belongs, nothing else (no `.part` left behind).
    assert server.digests() == station.expected
    assert station.written == scale.files
    # Nothing was ever visible under its final name with other bytes than its own.
    renames = list(server.watch.renames)
    wrong = [(path, digest) for path, digest in renames if station.expected.get(path) != digest]
    assert wrong == [], wrong
    assert server.watch.final_stores == []
    # The outbox keeps only today's growing CSV, untouched.
    assert outbox_files(outbox) == [str(station.today_csv.relative_to(outbox))]
    logs = "".join(run.output() for run in runs)
    assert server.password not in logs
    assert "Traceback" not in logs, logs[logs.index("Traceback") - 500 :][:4000]
    assert len(runs) == len(plan) + 1


def test_killed_between_rename_and_delete_the_file_is_sent_again_not_lost(
    watched_server, outbox, tmp_path, start_uploader
):
    """The narrowest window, alone: the final name is on the server, the local file not yet deleted."""
    server = watched_server()
    path = outbox / "audio" / "2022-07-19" / "rpi4-test@2022-07-19@10-00-00.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF" + bytes(range(256)) * 100)
    content = path.read_bytes()
    env = uploader_env(server, outbox, tmp_path)
    wire = server.watch.arm("SIZE")
    run = start_uploader(env)
    try:
        assert wire.hit.wait(30), run.output()
        run.kill()
    finally:
        wire.release.set()
    final_name = remote_of(f"2022-07-19/audio/{path.name}")
    assert server.files() == {final_name: content}  # already whole under its final name
    assert path.read_bytes() == content  # and still in the outbox: not verified, not deleted
    again = start_uploader(env)
    wait_until(lambda: not path.exists(), timeout=20)
    assert again.stop() == 0
    assert server.files() == {final_name: content}
    assert [name for name, _ in server.watch.renames] == [final_name, final_name]


def test_a_stale_part_of_unknown_origin_is_overwritten_not_trusted(watched_server, outbox, tmp_path, start_uploader):
    """A `.part` left by a killed run, longer than the file and with other bytes: the next run replaces it."""
    server = watched_server()
    path = outbox / "audio" / "2022-07-19" / "rpi4-test@2022-07-19@11-00-00.wav"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"RIFF-new-content" * 1000)
    final_name = remote_of(f"2022-07-19/audio/{path.name}")
    stale = server.root / Path(final_name).parent / f".{path.name}.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old bytes from another life" * 4000)
    run = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: not path.exists(), timeout=20)
    assert run.stop() == 0
    assert server.files() == {final_name: b"RIFF-new-content" * 1000}


class _Crash(BaseException):
    """The process dies here (a BaseException, so no handler in the code under test catches it)."""


def test_a_crash_between_the_two_removals_of_a_finished_day_leaves_the_final_not_a_bare_csv(
    monkeypatch, watched_server, outbox, tmp_path
):
    from pipeline.outbox import deletion as local_files

    day = outbox / "temp" / "2022-07-19"
    day.mkdir(parents=True)
    bare = day / "rpi4-test@2022-07-19.csv"
    bare.write_bytes(b"t,c\n1,20.5\n")
    final = day / "rpi4-test@2022-07-19.csv.final"
    final.write_bytes(b"t,c\n1,20.5\n")
    removals = []
    real_remove = local_files.os.remove

    def remove_then_die(path):
        if removals:
            raise _Crash
        removals.append(path)
        real_remove(path)

    monkeypatch.setattr(local_files.os, "remove", remove_then_die)
    with pytest.raises(_Crash):
        local_files.remove_local_file(str(final))
    monkeypatch.undo()
    # What is left is the final, which the next start uploads (again) and removes: no orphan bare .csv.
    assert outbox_files(outbox) == ["temp/2022-07-19/rpi4-test@2022-07-19.csv.final"]
    server = watched_server()
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert outbox_files(outbox) == []
    assert server.files() == {remote_of("2022-07-19/temp/rpi4-test@2022-07-19.csv"): b"t,c\n1,20.5\n"}
