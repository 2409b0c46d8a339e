"""The watch must not go deaf: an outbox given as a symlink, an outbox deleted and made again while
running, and a wall clock stepped back during a quiet period. The real `beemon-uploader run`."""

from __future__ import annotations

import shutil
import time
from datetime import date
from pathlib import Path

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
    server = watched_server()
    uploader = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: "watching" in uploader.output(), timeout=30)
    first, _ = recording(outbox, 1)
    wait_until(lambda: not first.exists(), timeout=30)

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
