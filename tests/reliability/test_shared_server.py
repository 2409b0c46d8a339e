"""Stations sharing one server that caps its connections: every station delivers, none starves.

Idle stations used to keep every session open with NOOPs: against a server allowing 4 connections,
the first station's 4 idle sessions locked the others out for as long as it ran. Now a station
closes its idle sessions but one after `ftp.idle_close_seconds`, opens more only as files arrive,
and after a 421 backs off with jitter, so the stations take turns. Each station here is a real
`beemon-uploader run` with 4 connections, its own outbox and station name.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import REMOTE_ROOT, uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files

DAY = "2022-07-19"
IDLE_CLOSE = "0.5"


class Station:
    """One station's outbox and what it wrote, by path under the server root."""

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.name = name
        self.outbox = tmp_path / f"outbox-{name}"
        self.outbox.mkdir()
        self.expected: dict[str, bytes] = {}
        self.count = 0

    def record(self, files: int, size: int = 40_000) -> None:
        for _ in range(files):
            name = f"{self.name}@{DAY}@10-{self.count // 60:02d}-{self.count % 60:02d}.wav"
            self.count += 1
            path = self.outbox / "audio" / DAY / name
            path.parent.mkdir(parents=True, exist_ok=True)
            content = b"RIFF" + os.urandom(size)
            path.write_bytes(content)
            self.expected[f"{REMOTE_ROOT.lstrip('/')}/{self.name}/{DAY}/audio/{name}"] = content

    def delivered(self, server) -> bool:
        files = server.files()
        return all(files.get(path) == content for path, content in self.expected.items()) and not outbox_files(
            self.outbox
        )


def start_station(station: Station, server, tmp_path: Path, start_uploader):
    env = uploader_env(
        server,
        station.outbox,
        tmp_path,
        BEEMON_STATION=station.name,
        BEEMON_FTP__CONNECTIONS="4",
        BEEMON_FTP__IDLE_CLOSE_SECONDS=IDLE_CLOSE,
    )
    return start_uploader(env)


def all_delivered(stations: list[Station], server, within: float) -> None:
    """Every station's files on the server, byte-identical, and gone from its outbox, within `within` s."""
    started = time.monotonic()
    try:
        wait_until(lambda: all(s.delivered(server) for s in stations), timeout=within)
    except AssertionError:
        late = [f"{s.name}: {sum(p in server.files() for p in s.expected)}/{len(s.expected)}" for s in stations]
        raise AssertionError(f"not every station delivered within {within} s: {', '.join(late)}") from None
    assert time.monotonic() - started <= within


def test_an_idle_station_leaves_a_full_server_to_the_next_one(watched_server, tmp_path, start_uploader):
    """The issue's case: 4 slots; the first station, idle after its files, must not lock the second out."""
    server = watched_server(max_cons_per_ip=4)
    first, second = Station(tmp_path, "rpi4-a"), Station(tmp_path, "rpi4-b")
    first.record(4)
    runs = [start_station(first, server, tmp_path, start_uploader)]
    all_delivered([first], server, within=20)
    second.record(4)
    runs.append(start_station(second, server, tmp_path, start_uploader))
    all_delivered([second], server, within=15)
    first.record(2)  # and the first station still gets its new files through
    all_delivered([first, second], server, within=15)
    for run in runs:
        assert run.stop() == 0, run.output()


def contend(server, tmp_path: Path, start_uploader, *, stations: int, files: int, within: float) -> None:
    """One station starts and goes idle; then the others start at once with `files` each, and it records more."""
    crowd = [Station(tmp_path, f"rpi4-{i:02d}") for i in range(stations)]
    crowd[0].record(files)
    runs = [start_station(crowd[0], server, tmp_path, start_uploader)]
    all_delivered(crowd[:1], server, within=20)
    for station in crowd[1:]:
        station.record(files)
    runs += [start_station(station, server, tmp_path, start_uploader) for station in crowd[1:]]
    crowd[0].record(2)
    all_delivered(crowd, server, within=within)
    for run in runs:
        assert run.alive(), run.output()
        assert run.stop() == 0, run.output()


def test_three_stations_with_four_sessions_each_share_four_slots(watched_server, tmp_path, start_uploader):
    contend(watched_server(max_cons_per_ip=4), tmp_path, start_uploader, stations=3, files=6, within=25)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_eight_stations_with_four_sessions_each_share_ten_slots(watched_server, tmp_path, start_uploader):
    """The issue's field case at full size."""
    contend(watched_server(max_cons_per_ip=10), tmp_path, start_uploader, stations=8, files=20, within=120)
