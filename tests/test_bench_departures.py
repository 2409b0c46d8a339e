"""The bench's clock for throughput rows: the last local delete, heard from inotify (`tests.benchmarks.departures`)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tests.benchmarks.departures import Departures


def test_it_counts_deletes_and_moves_away_and_times_out_short(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}").write_bytes(b"x")
    (tmp_path / "elsewhere").mkdir()
    with Departures(folder) as departures:
        (folder / "new").write_bytes(b"y")  # arrivals and writes are not departures
        for i in range(3):
            os.unlink(folder / f"f{i}")
        os.rename(folder / "f3", tmp_path / "elsewhere" / "f3")
        assert departures.wait(4, timeout=5.0)
        started = time.monotonic()
        assert not departures.wait(6, timeout=0.2)  # only 4 left so far
        assert time.monotonic() - started >= 0.2
        assert departures.gone == 4


def test_it_returns_at_the_last_departure(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    (folder / "last").write_bytes(b"x")
    with Departures(folder) as departures:
        timer = threading.Timer(0.3, os.unlink, args=(folder / "last",))
        timer.start()
        started = time.monotonic()
        assert departures.wait(1, timeout=30.0)
        assert 0.25 <= time.monotonic() - started < 10.0
        timer.join()


def test_with_names_only_those_count(tmp_path: Path) -> None:
    folder = tmp_path / "outbox"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "other"):
        (folder / name).write_bytes(b"x")
    with Departures(folder, ["a.wav", "b.wav"]) as departures:
        os.unlink(folder / "other")
        os.unlink(folder / "a.wav")
        assert not departures.wait(2, timeout=0.3)
        os.unlink(folder / "b.wav")
        assert departures.wait(2, timeout=5.0)
        assert departures.gone == 2
