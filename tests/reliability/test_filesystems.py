"""The outbox's file system misbehaves: mounted read-only, or full. Needs `mount` (root in a container will do)."""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli, uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of

DAY = "2022-07-19"
OLD = 1_600_000_000


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`tmpfs("4m")`: a fresh tmpfs of that size, unmounted at teardown; skips where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        point = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True, check=False
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}): needs root or CAP_SYS_ADMIN")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)
    with pytest.raises(OSError) as caught:
        (point / "probe").write_bytes(b"")
    assert caught.value.errno == errno.EROFS


def test_an_outbox_on_a_read_only_file_system_is_uploaded_once_and_kept(
    tmpfs, watched_server, tmp_path, start_uploader
):
    outbox = tmpfs("4m")
    names = [f"rpi4-test@{DAY}@10-00-{i:02d}.wav" for i in range(3)]
    for name in names:
        path = outbox / "audio" / DAY / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"RIFF " + name.encode())
        os.utime(path, (OLD, OLD))
    remount_read_only(outbox)
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="0.2")
    run = start_uploader(env)
    wait_until(lambda: len(server.files()) == 3, timeout=20)
    settled = time.monotonic()
    wait_until(lambda: time.monotonic() - settled > 0.8, timeout=5)  # four rescans later
    assert run.stop() == 0
    output = run.output()
    assert server.files() == {remote_of(f"{DAY}/audio/{name}"): b"RIFF " + name.encode() for name in names}
    for name in names:
        assert len(server.watch.stored(name)) == 1, output  # not again at every rescan
        removal = [line for line in output.splitlines() if name in line and "Read-only file system" in line]
        assert len(removal) == 1, output  # one line says why it stays
    assert outbox_files(outbox) == [f"audio/{DAY}/{name}" for name in names]


def test_a_full_local_disk_still_uploads_everything_written_and_frees_it(tmpfs, watched_server, tmp_path):
    outbox = tmpfs("2m")
    scratch = outbox / "tmp"  # the uploader's own temporary files live on the same full disk
    scratch.mkdir()
    written: dict[str, bytes] = {}
    index = 0
    with pytest.raises(OSError) as full:  # the station writes until the disk is full
        while True:
            path = outbox / "audio" / DAY / f"rpi4-test@{DAY}@11-00-{index:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            content = b"RIFF" + os.urandom(300_000)
            try:
                path.write_bytes(content)
            finally:
                written[path.name] = path.read_bytes() if path.exists() else b""
                os.utime(path, (OLD, OLD)) if path.exists() else None
            index += 1
    assert full.value.errno == errno.ENOSPC
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, TMPDIR=str(scratch))
    done = run_cli(env, "run", "--once")
    assert done.returncode == 0, done.stderr
    # Everything on disk arrived as it is there (the last file as far as the station got), and space is free again.
    assert server.files() == {remote_of(f"{DAY}/audio/{name}"): content for name, content in written.items()}
    assert outbox_files(outbox) == []
