"""A station's day, end to end, on compressed time: the uploader comes back to a backlog from an
outage; recordings keep coming into yesterday's folders while it drains, and the day's CSVs grow;
the power goes (SIGKILL of every process of the uploader); it starts again; midnight rolls over
with its `.final` files, except for one sensor whose `.final` never comes; today's recordings go
on. At the end the server holds every file once, byte-identical, and the outbox only today's CSV."""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from tests.e2e.conftest import STATION, uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of, start_uploader, watched_server  # noqa: F401

TODAY = date.today()
OLD = time.time() - 5 * 86_400
TICK = 0.2  # one compressed "minute" of the station


def running(pid: int) -> bool:
    """Whether the process is still there and not a zombie waiting for its reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def day(offset: int) -> str:
    return (TODAY - timedelta(days=offset)).isoformat()


class Station:
    """Writes as beemon's recorders do and keeps the list of what the server must end up holding."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.rng = random.Random(7)
        self.expected: dict[str, bytes] = {}
        self.csv: dict[str, bytearray] = {}
        self.midnight = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._live, daemon=True)
        self.recordings = 0

    def path(self, sensor: str, day_: str, name: str) -> Path:
        folder = self.outbox / sensor / day_
        folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def audio(self, day_: str, index: int, old: bool = False) -> None:
        """Written in place, then closed."""
        name = f"{STATION}@{day_}@{index // 3600:02d}-{index // 60 % 60:02d}-{index % 60:02d}.wav"
        content = b"RIFF" + self.rng.randbytes(self.rng.randint(20_000, 60_000))
        path = self.path("audio", day_, name)
        with path.open("wb") as out:
            out.write(content)
        if old:
            os.utime(path, (OLD, OLD))
        self.expected[remote_of(f"{day_}/audio/{name}")] = content

    def video(self, day_: str, index: int, old: bool = False) -> None:
        """Saved atomically: a dot-name, then `os.replace` into place."""
        name = f"{STATION}@{day_}@{index:02d}-00-00.h264"
        content = b"\x00\x00\x00\x01\x67" + self.rng.randbytes(300_000)
        temp = self.path("video", day_, f".{name}.tmp")
        temp.write_bytes(content)
        if old:
            os.utime(temp, (OLD, OLD))
        os.replace(temp, temp.with_name(name))
        self.expected[remote_of(f"{day_}/video/{name}")] = content

    def reading(self, sensor: str, day_: str) -> None:
        """One line appended to the sensor's day file: open, append, close."""
        line = b"%d,%.2f\n" % (len(self.csv.get(f"{sensor}/{day_}", b"")), self.rng.uniform(20, 40))
        self.csv.setdefault(f"{sensor}/{day_}", bytearray()).extend(line)
        with self.path(sensor, day_, f"{STATION}@{day_}.csv").open("ab") as out:
            out.write(line)

    def finish_day(self, sensor: str, day_: str) -> None:
        """Midnight: the day's last state written to `X.csv.final` (closed)."""
        name = f"{STATION}@{day_}.csv"
        self.path(sensor, day_, name + ".final").write_bytes(bytes(self.csv[f"{sensor}/{day_}"]))
        self.expected[remote_of(f"{day_}/{sensor}/{name}")] = bytes(self.csv[f"{sensor}/{day_}"])

    def backlog(self) -> None:
        """What an outage of three days left behind: recordings and finished day files."""
        for offset in (4, 3, 2):
            for index in range(25):
                self.audio(day(offset), 600 * index, old=True)
            self.video(day(offset), 6, old=True)
            for _ in range(20):
                self.reading("temp", day(offset))
            self.finish_day("temp", day(offset))
            for sensor in ("temp",):
                for name in (f"{STATION}@{day(offset)}.csv", f"{STATION}@{day(offset)}.csv.final"):
                    path = self.outbox / sensor / day(offset) / name
                    os.utime(path, (OLD, OLD))

    def _live(self) -> None:
        yesterday, today, index = day(1), day(0), 0
        while not self.stop.is_set():
            index += 1
            if not self.midnight.is_set():
                self.reading("temp", yesterday)
                self.reading("cpu", yesterday)  # this sensor's .final will never come
                if index % 3 == 0:
                    self.audio(yesterday, 80_000 + index)
                    self.recordings += 1
            else:
                self.reading("temp", today)  # today's file: grows, never sent
                if index % 3 == 0:
                    self.audio(today, index)
                    self.recordings += 1
            self.stop.wait(TICK)

    def roll_over(self) -> None:
        """Midnight: yesterday's temp CSV finished; the cpu sensor's never is (it crashed)."""
        self.midnight.set()
        time.sleep(TICK * 2)  # the loop has moved to today
        self.finish_day("temp", day(1))
        cpu = f"{STATION}@{day(1)}.csv"
        self.expected[remote_of(f"{day(1)}/cpu/{cpu}")] = bytes(self.csv[f"cpu/{day(1)}"])


def test_a_station_day_backlog_live_power_cut_midnight_and_a_final_that_never_comes(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    station = Station(outbox)
    station.backlog()
    backlog = len(station.expected)
    env = uploader_env(
        server,
        outbox,
        tmp_path,
        BEEMON_UPLOAD__BANDWIDTH_LIMIT_KBPS="16000",  # ~2 MB/s: the backlog drains over seconds
        BEEMON_UPLOAD__ORPHAN_CSV_AFTER_HOURS="0.0008",  # ~3 s quiet
        BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="0.5",
    )
    first = start_uploader(env)
    station.thread.start()
    try:
        # The power goes while the backlog drains and recordings keep coming.
        wait_until(lambda: len(server.arrivals.snapshot()) >= backlog // 3, timeout=40)
        pids = first.group()
        assert len(pids) >= 2  # the uploader and its sink
        first.kill()
        wait_until(lambda: not any(running(pid) for pid in pids), timeout=10)
        time.sleep(0.5)
        second = start_uploader(env)
        wait_until(lambda: "watching" in second.output(), timeout=30)
        wait_until(lambda: station.recordings >= 12, timeout=20)
        station.roll_over()
        time.sleep(2.0)  # today's recordings, then the station is left alone
    finally:
        station.stop.set()
        station.thread.join(10)
    today_csv = f"temp/{day(0)}/{STATION}@{day(0)}.csv"
    wait_until(lambda: outbox_files(outbox) == [today_csv], timeout=60)
    wait_until(lambda: server.files() == station.expected, timeout=20)
    assert second.stop() == 0
    output = second.output()
    assert server.files() == station.expected  # every file once, byte-identical, nothing more (no .part)
    assert outbox_files(outbox) == [today_csv]
    assert (outbox / today_csv).read_bytes() == bytes(station.csv[f"temp/{day(0)}"])
    cpu = outbox / "cpu" / day(1) / f"{STATION}@{day(1)}.csv"
    orphan_lines = [line for line in output.splitlines() if "WARNING" in line and str(cpu) in line]
    assert len(orphan_lines) == 1 and "without its .final" in orphan_lines[0], output
