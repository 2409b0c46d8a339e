"""Names a station can produce: long enough to leave no room for a temporary name, and names whose
`<station>@` prefix is not this station's. The real `beemon-uploader` against a loopback server."""

from __future__ import annotations

import os
import posixpath
import time
from collections import Counter
from pathlib import Path

from tests.e2e.conftest import STATION, run_cli, uploader_env
from tests.ftp_faults import Faults
from tests.reliability.conftest import outbox_files, remote_of, watched_server  # noqa: F401

DAY = "2022-07-19"
OLD = time.time() - 86_400


def put(outbox: Path, relative: str, content: bytes) -> Path:
    path = outbox / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (OLD, OLD))
    return path


def name_of_bytes(size: int, filler: str = "x") -> str:
    """A station file name of exactly `size` bytes in UTF-8."""
    head, tail = f"{STATION}@{DAY}@10-00-00-", ".wav"
    room = size - len(head.encode()) - len(tail)
    unit = len(filler.encode())
    name = head + filler * (room // unit) + "x" * (room % unit) + tail
    assert len(name.encode()) == size
    return name


def test_names_of_250_to_255_bytes_are_delivered_through_a_short_temporary_name_and_resume_it(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    # The first transfer is cut halfway: the second attempt must resume the same (short) temporary name.
    server = watched_server(faults=Faults(cut_after_bytes=300_000, cuts=1))
    names = [name_of_bytes(255), name_of_bytes(250, "ü"), name_of_bytes(200)]
    contents = {name: os.urandom(600_000 if index == 0 else 5_000) for index, name in enumerate(names)}
    for name, content in contents.items():
        put(outbox, f"audio/{DAY}/{name}", content)
    done = run_cli(uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1"), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert server.files() == {remote_of(f"{DAY}/audio/{name}"): content for name, content in contents.items()}
    assert outbox_files(outbox) == []
    stored = server.faults.commands("STOR") + server.faults.commands("APPE")
    staged = [posixpath.basename(arg) for arg in stored if not arg.endswith("SHA256SUMS.part")]
    assert all(len(name.encode()) <= 255 for name in staged)
    assert f".{names[2]}.part" in staged  # a name with room keeps the readable temporary name
    long_stages = [name for name in staged if name != f".{names[2]}.part"]
    assert sorted(Counter(long_stages).values()) == [1, 2]  # the big one cut and resumed, the other once
    assert any(int(offset) > 0 for offset in server.faults.commands("REST"))  # resumed, not sent again


def test_every_file_goes_to_the_configured_stations_folder_whatever_its_name_says_with_one_warning_per_name(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    prefixes = [STATION, "rpi4-12", "rpi4 11", "ruché-ünï"]
    contents = {}
    for prefix in prefixes:
        for hour in (10, 11):
            name = f"{prefix}@{DAY}@{hour}-00-00.wav"
            contents[name] = f"RIFF {prefix} {hour}".encode()
            put(outbox, f"audio/{DAY}/{name}", contents[name])
    put(outbox, "notes.txt", b"no convention at all")
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    expected = {remote_of(f"{DAY}/audio/{name}"): content for name, content in contents.items()}
    expected[remote_of(f"{time.strftime('%Y-%m-%d', time.localtime(OLD))}/misc/notes.txt")] = b"no convention at all"
    assert server.files() == expected  # all under data/<configured station>/
    assert outbox_files(outbox) == []
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line and "is named for the station" in line]
    assert len(warnings) == 3, done.stderr  # once per differing prefix, not per file
    for prefix in prefixes[1:]:
        assert sum(f"station {prefix!r}" in line for line in warnings) == 1
