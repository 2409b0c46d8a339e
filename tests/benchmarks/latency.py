"""The latency workloads: a fresh file written while a backlog drains, and files written at a steady rate.

Each measures close -> visible on the server's disk (a thread polls the server's folders) and
checks, like every workload, that every file arrived whole and none is left in the outbox.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

from tests.benchmarks.harness import Uploader, content, file_name, fresh_dir, leftovers, remote_dir, verify, write_files
from tests.benchmarks.servers import ftp_server
from tests.benchmarks.workloads import MB, OLD, TIMEOUT, Figures, check
from tests.helpers import station_files


class ArrivalWatch:
    """Polls server folders every `interval` s in a thread and notes when each name first appears there."""

    def __init__(self, folders: list[Path], interval: float = 0.002) -> None:
        self.folders = folders
        self.interval = interval
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ArrivalWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for folder in self.folders:
                try:
                    names = os.listdir(folder)
                except FileNotFoundError:
                    continue
                for name in names:
                    if not name.startswith(".") and name not in self.seen:
                        self.seen[name] = now
            time.sleep(self.interval)

    def wait_for(self, name: str, timeout: float = TIMEOUT) -> float:
        deadline = time.monotonic() + timeout
        while name not in self.seen:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} not on the server within {timeout} s")
            time.sleep(self.interval)
        return self.seen[name]


def _write_closed(path: Path, size: int) -> float:
    """Write a file as a station does (open, write, close in place); the time of the close."""
    data = content(path.name, size)
    with path.open("wb") as file:
        file.write(data)
    return time.monotonic()


def backlog(
    work: Path, *, files: int = 40, size: int = 8 * MB, delay: float = 0.02, debounce: float = 0.5, exact: bool = False
) -> Figures:
    """A backlog (half audio, half video, a day old) drains at `delay` per reply; a fresh file is written meanwhile.

    Figures: close -> visible for the fresh file, the longest single transfer the sink logged, the
    target (debounce + that transfer), and how many backlog files were still not on the server
    when the fresh one appeared (above 0: it overtook the backlog).
    """
    old_day = "2024-04-30"
    outbox = fresh_dir(work / "outbox")
    audio = [file_name(i, "wav", "old", old_day) for i in range(files - files // 2)]
    video = [file_name(i, "h264", "old", old_day) for i in range(files // 2)]
    write_files(outbox / "audio" / old_day, audio, size, mtime=OLD)
    write_files(outbox / "video" / old_day, video, size, mtime=OLD)
    (outbox / "audio").mkdir(exist_ok=True)
    fresh = file_name(0, "wav", "fresh")
    with ftp_server(work, delay) as server:
        folders = [remote_dir(server.root, "audio", old_day), remote_dir(server.root, "video", old_day)]
        fresh_folder = remote_dir(server.root, "audio")
        uploader = Uploader(work, outbox, server.port, server.password, debounce=debounce)
        with ArrivalWatch([*folders, fresh_folder]) as watch, uploader:
            deadline = time.monotonic() + TIMEOUT
            while not watch.seen and time.monotonic() < deadline:
                time.sleep(0.002)
            closed = _write_closed(outbox / "audio" / fresh, size)
            visible = watch.wait_for(fresh)
            left = files - sum(1 for name in watch.seen if name != fresh and watch.seen[name] <= visible)
            for name in audio + video:
                watch.wait_for(name)
            _wait_gone(outbox)
        transfers = uploader.transfer_seconds()
        assert uploader.process is not None and uploader.process.returncode == 0, uploader.log()[-2000:]
        assert not verify(folders[0], audio, size, exact=exact) and not verify(folders[1], video, size, exact=exact)
        assert not verify(fresh_folder, [fresh], size, exact=exact) and not leftovers(server.root)
    longest = max(transfers) if transfers else 0.0
    return {
        "fresh_latency_s": visible - closed,
        "longest_transfer_s": longest,
        "target_s": debounce + longest,
        "backlog_left": float(left),
    }


def _wait_gone(outbox: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while station_files(outbox):
        if time.monotonic() > deadline:
            raise AssertionError(f"files still in {outbox} after {timeout} s")
        time.sleep(0.01)


def live_latency(
    work: Path, *, files: int = 200, rate: float = 5.0, size: int = 4096, debounce: float = 0.5, exact: bool = True
) -> Figures:
    """Files written `rate` per second into a running uploader's outbox: close -> visible, p50 and p95."""
    outbox = fresh_dir(work / "outbox")
    folder = outbox / "audio"
    folder.mkdir()
    names = [file_name(i, tag="live") for i in range(files)]
    closed: dict[str, float] = {}
    with ftp_server(work) as server:
        uploader = Uploader(work, outbox, server.port, server.password, debounce=debounce)
        with ArrivalWatch([remote_dir(server.root)]) as watch, uploader:
            started = time.monotonic()
            for index, name in enumerate(names):
                pause = started + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                closed[name] = _write_closed(folder / name, size)
            latencies = [watch.wait_for(name) - closed[name] for name in names]
            _wait_gone(outbox)
        assert uploader.process is not None and uploader.process.returncode == 0, uploader.log()[-2000:]
        check(server, names, size, outbox, exact=exact)
    return {"p50_s": _percentile(latencies, 50), "p95_s": _percentile(latencies, 95), "debounce_s": debounce}


def _percentile(values: list[float], percent: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1]
