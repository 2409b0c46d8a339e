"""A station that writes the way beemon's sensors do, and remembers what the server must end up holding.

Audio is written in place and closed; video is saved atomically (a dot-name, then `os.replace`);
each finished day's temperature CSV grows by appends and is finished with `X.csv.final`; today's
CSV only grows. `expected` maps each final remote path (under the server root) to its SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
from datetime import date, timedelta
from pathlib import Path

from tests.e2e.conftest import STATION
from tests.reliability.conftest import Scale, remote_of

FIRST_DAY = date(2022, 7, 1)
OLD = 1_600_000_000  # an mtime long past: the backfill takes such files at once


class Station:
    def __init__(self, outbox: Path, scale: Scale, seed: int = 11) -> None:
        self.outbox = outbox
        self.scale = scale
        self.rng = random.Random(seed)
        self.expected: dict[str, str] = {}
        self.written = 0
        self._day = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.today = FIRST_DAY + timedelta(days=scale.files + 1)
        self.today_csv = outbox / "temp" / self.today.isoformat() / f"{STATION}@{self.today.isoformat()}.csv"
        self._today_lines = 0

    # --- one file of each kind

    def _expect(self, relative: str, content: bytes) -> None:
        with self._lock:
            self.expected[remote_of(relative)] = hashlib.sha256(content).hexdigest()
            self.written += 1

    def audio(self, day: date, index: int, old: bool = False) -> Path:
        content = b"RIFF" + self.rng.randbytes(self.rng.randint(*self.scale.audio_bytes))
        name = f"{STATION}@{day.isoformat()}@{index // 3600:02d}-{index // 60 % 60:02d}-{index % 60:02d}.wav"
        path = self.outbox / "audio" / day.isoformat() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:  # in place, then closed
            out.write(content)
        self._expect(f"{day.isoformat()}/audio/{name}", content)
        if old:
            os.utime(path, (OLD, OLD))
        return path

    def video(self, day: date, index: int, old: bool = False) -> Path:
        content = b"\x00\x00\x00\x01\x67" + self.rng.randbytes(self.rng.randint(*self.scale.video_bytes))
        name = f"{STATION}@{day.isoformat()}@{index // 3600:02d}-{index // 60 % 60:02d}-{index % 60:02d}.h264"
        path = self.outbox / "video" / day.isoformat() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_bytes(content)
        if old:
            os.utime(temporary, (OLD, OLD))
        os.replace(temporary, path)  # an atomic save
        self._expect(f"{day.isoformat()}/video/{name}", content)
        return path

    def csv_day(self, old: bool = False) -> Path:
        """A finished day: its CSV grown line by line, then its `.csv.final`."""
        with self._lock:
            day = FIRST_DAY + timedelta(days=self._day)
            self._day += 1
        name = f"{STATION}@{day.isoformat()}.csv"
        path = self.outbox / "temp" / day.isoformat() / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["timestamp,temperature_c\n"] + [
            f"{day.isoformat()}T{h:02d}:00:00,{20 + self.rng.random() * 5:.2f}\n"
            for h in range(self.rng.randint(1, 24))
        ]
        for line in lines:
            with path.open("a") as csv:
                csv.write(line)
        content = path.read_bytes()
        final = path.with_name(name + ".final")
        temporary = path.with_name(f".{name}.final.tmp")
        temporary.write_bytes(content)
        if old:
            os.utime(temporary, (OLD, OLD))
            os.utime(path, (OLD, OLD))
        os.replace(temporary, final)
        self._expect(f"{day.isoformat()}/temp/{name}", content)
        return final

    def grow_today(self) -> None:
        """Today's CSV: appended to, never finished; it must stay in the outbox."""
        self.today_csv.parent.mkdir(parents=True, exist_ok=True)
        with self.today_csv.open("a") as csv:
            csv.write(f"{self.today.isoformat()}T00:00:{self._today_lines % 60:02d},21.5\n")
        self._today_lines += 1

    def one(self, index: int, old: bool = False) -> Path:
        """The index-th file of the mix: mostly CSV days, many WAVs, a video every 25 files."""
        day = FIRST_DAY + timedelta(days=index % 40)
        if index % 25 == 0:
            return self.video(day, index, old)
        if index % 2 == 0:
            return self.audio(day, index, old)
        return self.csv_day(old)

    # --- a backlog, then live writing

    def backlog(self, count: int) -> None:
        for index in range(count):
            self.one(index, old=True)
        self.grow_today()

    def start(self, first_index: int, every: float) -> None:
        """Write one file every `every` seconds from `first_index` on, until `stop()` or `scale.files`."""

        def run() -> None:
            index = first_index
            while index < self.scale.files and not self._stop.wait(every):
                self.one(index)
                self.grow_today()
                index += 1

        self._thread = threading.Thread(target=run, name="station", daemon=True)
        self._thread.start()

    def finish(self, timeout: float = 120) -> None:
        """Wait until every file of the scale is written."""
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "the station did not finish writing"

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
