"""The watch must not go deaf: an outbox given as a symlink, an outbox deleted and made again while
running, and a wall clock stepped back during a quiet period; nor hear its own state folder, which
the sink writes at every delivery. The real `beemon-uploader run`."""

from __future__ import annotations

import os
import shutil
import time
from datetime import date
from pathlib import Path

from pipeline.outbox.lock import STATE_FOLDER
from tests.e2e.conftest import STATION, uploader_env
from tests.helpers import wait_until, write_file
from tests.reliability.conftest import outbox_files, remote_of, start_uploader, watched_server  # noqa: F401
from tests.servers import unavailable

TODAY = date.today().isoformat()
LIBFAKETIME = next(iter(sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))), Path("/nonexistent"))


def remove_tree(path: Path) -> None:
    """`rm -rf` as a clean-up script runs it while the uploader still writes its state folder
    (`.beemon/`: status, manifests journal): retried until the folder is gone."""
    wait_until(lambda: shutil.rmtree(path, ignore_errors=True) or not path.exists(), timeout=10)


def recording(outbox: Path, index: int, content: bytes | None = None) -> tuple[Path, bytes]:
    """A recording finished into a day folder made just now (as the recorder does at its first file of a day)."""
    name = f"{STATION}@{TODAY}@10-00-{index:02d}.wav"
    data = content if content is not None else b"RIFF recording %d" % index
    return write_file(outbox / "audio" / TODAY / name, data), data


def watching_after_one_delivery(watched_server, start_uploader, outbox: Path, tmp_path: Path):  # noqa: F811
    """A running uploader that watches `outbox` and has delivered (and removed) one recording: (server, uploader)."""
    server = watched_server()
    uploader = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: "watching" in uploader.output(), timeout=30)
    first, _ = recording(outbox, 1)
    wait_until(lambda: not first.exists(), timeout=30)
    return server, uploader


def inotify_watched_inodes(pid: int) -> set[int]:
    """The inode of every folder the process has an inotify watch on, as the kernel lists them
    (``/proc/PID/fdinfo``: one ``inotify wd:.. ino:<hex> ..`` line per watch)."""
    inodes: set[int] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as info:
                lines = info.read().splitlines()
        except OSError:  # closed meanwhile (a watch being re-armed)
            continue
        for line in lines:
            if line.startswith("inotify "):
                fields = dict(part.split(":", 1) for part in line.split()[1:] if ":" in part)
                inodes.add(int(fields["ino"], 16))
    return inodes


def folders_below(path: Path) -> dict[Path, int]:
    """`path` and every folder under it, with their inodes."""
    return {folder: folder.stat().st_ino for folder in [path, *path.rglob("*")] if folder.is_dir()}


def test_a_running_uploader_watches_nothing_in_its_state_folder_and_never_sends_a_file_put_there(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    uploader = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: "watching" in uploader.output(), timeout=30)
    sent = [recording(outbox, index) for index in range(5)]
    for path, _ in sent:
        wait_until(lambda path=path: not path.exists(), timeout=30)
    state = outbox / STATE_FOLDER
    assert list((state / "manifests").iterdir())  # the sink journaled the deliveries there

    # Something put in the state folder, and in a folder made there now; then one more recording.
    stray = write_file(state / "extra" / f"{STATION}@{TODAY}@11-00-00.wav", b"not for the server")
    beside = write_file(state / f"{STATION}@{TODAY}@11-00-01.wav", b"nor this")
    last, last_data = recording(outbox, 9)
    wait_until(lambda: not last.exists(), timeout=30)

    watched = inotify_watched_inodes(uploader.pid)
    day_folder = outbox / "audio" / TODAY
    assert {outbox.stat().st_ino, day_folder.stat().st_ino} <= watched  # the kernel's list is read right
    assert {folder: inode for folder, inode in folders_below(state).items() if inode in watched} == {}
    assert uploader.stop() == 0
    files = server.files()
    assert sorted(files) == sorted(remote_of(f"{TODAY}/audio/{path.name}") for path, _ in [*sent, (last, last_data)])
    assert all(files[remote_of(f"{TODAY}/audio/{path.name}")] == data for path, data in [*sent, (last, last_data)])
    assert stray.read_bytes() == b"not for the server" and beside.read_bytes() == b"nor this"
    assert outbox_files(outbox) == []


def test_a_replaced_outbox_is_watched_again_without_its_state_folder_and_with_folders_made_later(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server, uploader = watching_after_one_delivery(watched_server, start_uploader, outbox, tmp_path)

    # Restored from a backup: the outbox made again with its state folder, while running.
    remove_tree(outbox)
    (outbox / STATE_FOLDER / "manifests").mkdir(parents=True)
    wait_until(lambda: "was replaced" in uploader.output(), timeout=20)
    second, second_data = recording(outbox, 2)  # a day folder made after the watch was re-armed
    wait_until(lambda: not second.exists(), timeout=30)
    video = write_file(outbox / "video" / TODAY / f"{STATION}@{TODAY}@10-30-00.h264", b"h264 frames")
    wait_until(lambda: not video.exists(), timeout=30)

    watched = inotify_watched_inodes(uploader.pid)
    assert {outbox.stat().st_ino, (outbox / "video" / TODAY).stat().st_ino} <= watched
    state = outbox / STATE_FOLDER
    assert list((state / "manifests").iterdir())  # journaled into the new state folder
    assert {folder: inode for folder, inode in folders_below(state).items() if inode in watched} == {}
    assert uploader.stop() == 0
    assert server.files()[remote_of(f"{TODAY}/audio/{second.name}")] == second_data
    assert server.files()[remote_of(f"{TODAY}/video/{video.name}")] == b"h264 frames"
    assert outbox_files(outbox) == []


def test_a_symlinked_outbox_watches_day_folders_made_after_the_start(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    tmp_path,
):
    server = watched_server()
    real = tmp_path / "data" / "outbox"
    real.mkdir(parents=True)
    link = tmp_path / "outbox"
    link.symlink_to(real)
    uploader = start_uploader(uploader_env(server, link, tmp_path))  # the rescan is 600 s away
    wait_until(lambda: "watching" in uploader.output(), timeout=30)
    path, data = recording(link, 1)
    remote = server.root / remote_of(f"{TODAY}/audio/{path.name}")
    wait_until(remote.exists, timeout=8)
    wait_until(lambda: not path.exists(), timeout=8)
    assert uploader.stop() == 0
    assert remote.read_bytes() == data
    assert outbox_files(real) == []


def test_an_outbox_deleted_and_made_again_while_running_is_watched_again_with_one_warning(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server, uploader = watching_after_one_delivery(watched_server, start_uploader, outbox, tmp_path)

    # Replaced between two looks: deleted and made again at once (a clean-up script, a remount).
    remove_tree(outbox)
    outbox.mkdir()
    second, second_data = recording(outbox, 2)
    wait_until(lambda: (server.root / remote_of(f"{TODAY}/audio/{second.name}")).exists(), timeout=30)
    wait_until(lambda: "was replaced" in uploader.output(), timeout=20)
    # The delivery ends after the rename (the size check, the manifest journal in the outbox, the local delete):
    # removing the outbox before it ends would add the journal's warning to the two this test counts.
    wait_until(lambda: not second.exists(), timeout=30)

    # Gone for a while, then back.
    remove_tree(outbox)
    wait_until(lambda: "is gone" in uploader.output(), timeout=30)
    outbox.mkdir()
    third, third_data = recording(outbox, 3)
    wait_until(lambda: (server.root / remote_of(f"{TODAY}/audio/{third.name}")).exists(), timeout=30)
    fourth, fourth_data = recording(outbox, 4)  # and it keeps hearing
    wait_until(lambda: not fourth.exists(), timeout=30)
    assert uploader.stop() == 0
    output = uploader.output()
    assert server.files()[remote_of(f"{TODAY}/audio/{second.name}")] == second_data
    assert server.files()[remote_of(f"{TODAY}/audio/{third.name}")] == third_data
    assert server.files()[remote_of(f"{TODAY}/audio/{fourth.name}")] == fourth_data
    assert outbox_files(outbox) == []
    warnings = [line for line in output.splitlines() if "WARNING" in line and "outbox" in line]
    assert len(warnings) == 2, output  # one line each time: replaced; gone
    assert "was replaced by a new folder: watching it again" in warnings[0]
    assert "is gone" in warnings[1]


def test_a_wall_clock_stepped_back_an_hour_during_the_quiet_period_delays_nothing(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    if not LIBFAKETIME.exists():
        unavailable("libfaketime is not installed (Debian's faketime)")
    server = watched_server()
    offset = tmp_path / "clock-offset"
    offset.write_text("+0\n")
    env = uploader_env(
        server,
        outbox,
        tmp_path,
        BEEMON_UPLOAD__DEBOUNCE_SECONDS="1.5",
        LD_PRELOAD=str(LIBFAKETIME),
        FAKETIME_TIMESTAMP_FILE=str(offset),
        FAKETIME_NO_CACHE="1",
        FAKETIME_DONT_FAKE_MONOTONIC="1",  # the kernel's monotonic clock never steps
    )
    uploader = start_uploader(env)
    wait_until(lambda: "watching" in uploader.output(), timeout=30)
    path, data = recording(outbox, 1)
    written = time.monotonic()
    time.sleep(0.5)
    offset.write_text("-3600\n")  # NTP corrects the clock by an hour, mid-debounce
    remote = server.root / remote_of(f"{TODAY}/audio/{path.name}")
    wait_until(remote.exists, timeout=10)
    assert time.monotonic() - written < 8  # the debounce (1.5 s) and a transfer, not an hour
    wait_until(lambda: not path.exists(), timeout=10)
    assert uploader.stop() == 0
    assert remote.read_bytes() == data


def test_a_file_delivered_after_the_outbox_was_moved_aside_is_in_its_days_manifest(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    """The operator keeps the outbox as a backup (`mv outbox outbox.old; mkdir outbox`) while the uploader runs:
    a file delivered from the new outbox is gone from the station, so its line must reach the day's manifest
    (the journal in the new state folder, put up at the next start), not the moved-aside journal."""
    server, uploader = watching_after_one_delivery(watched_server, start_uploader, outbox, tmp_path)

    os.rename(outbox, tmp_path / "outbox.old")
    outbox.mkdir()
    wait_until(lambda: "was replaced" in uploader.output(), timeout=20)
    second, second_data = recording(outbox, 2)
    wait_until(lambda: not second.exists(), timeout=30)
    assert uploader.stop() == 0  # today's manifest is within its interval: its lines wait in the journal
    assert server.files()[remote_of(f"{TODAY}/audio/{second.name}")] == second_data
    assert outbox_files(outbox) == []

    again = start_uploader(uploader_env(server, outbox, tmp_path))  # the next start puts the journal up
    manifest = server.root / remote_of(f"{TODAY}/SHA256SUMS")
    try:
        wait_until(lambda: manifest.exists() and f"audio/{second.name}" in manifest.read_text(), timeout=20)
    finally:
        assert again.stop() == 0
