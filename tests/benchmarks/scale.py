"""The scale workloads: an idle outbox of thousands of files (CPU), and the backfill of 100,000 (memory, first upload)."""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from tests.benchmarks import baselines, procs
from tests.benchmarks.harness import Uploader, file_name, free_port, fresh_dir, leftovers
from tests.benchmarks.servers import Server, ftp_server
from tests.benchmarks.workloads import OLD, Figures
from tests.helpers import station_files

#: The backfill row's files (`_dated_outbox`'s size) and where they land on the server.
BACKFILL_SIZE = 100
REMOTE_STATION = Path("data") / "bench"
#: How often the backfill row samples the summed RSS of the uploader's processes.
RSS_INTERVAL = 0.05
#: Its uploader's statistics lines, which tell when every file is queued.
STATS_INTERVAL = 0.5


def _dated_outbox(outbox: Path, files: int, *, per_day: int = 1000, size: int = BACKFILL_SIZE) -> list[Path]:
    """`files` old files in audio/<date>/ folders of `per_day` files (a station's months of backlog)."""
    paths = []
    for index in range(files):
        day = f"2023-{1 + (index // per_day) // 28 % 12:02d}-{1 + (index // per_day) % 28:02d}"
        folder = outbox / "audio" / day
        if index % per_day == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / file_name(index, day=day)
        if not path.exists():
            path.write_bytes(b"x" * size)
            os.utime(path, (OLD, OLD))
        paths.append(path)
    return paths


def idle_cpu(
    work: Path, *, files: int = 9000, window: float = 60.0, slices: int = 3, settle: float = 8.0
) -> list[Figures]:
    """CPU % of one core with `files` waiting in the outbox and nothing happening for `window` s.

    Three side by side: the uploader with inotify, with polling (1 s), and watchdog's polling
    observer alone. The server is down (a closed port), as when a station's outbox grows that big:
    the jobs wait in the sink, whose sessions retry with backoff. The window is cut into `slices`
    equal parts, one figure set each (the bench's "runs" for this row: one idle minute, not three).
    The window opens `settle` s after the uploaders watch, and once the inotify one has used at most
    1 % of a core over a second: its start-up (the scan queueing every file) is over.
    """
    port = free_port()
    boxes = {kind: work / f"outbox-{kind}" for kind in ("inotify", "polling", "observer")}
    for box in boxes.values():
        _dated_outbox(box, files)
    uploaders = [Uploader(work, boxes[kind], port, observer=kind, debounce=2.0) for kind in ("inotify", "polling")]
    observer = None
    try:
        for uploader in uploaders:
            uploader.start(wait=False)
        for uploader in uploaders:
            uploader.wait_for_log("watching ", 60)
        observer = baselines.polling_observer(boxes["observer"])
        time.sleep(settle)  # the startup scan queues every file; then nothing happens
        _quiet(uploaders[0].pid, timeout=max(settle, 30.0))
        pids = [u.pid for u in uploaders] + [observer.pid]
        figures = []
        for _ in range(slices):
            before = [procs.cpu_seconds(pid) for pid in pids]
            started = time.monotonic()
            seconds = _per_second(pids[0], started + window / slices)
            elapsed = time.monotonic() - started
            used = [procs.cpu_seconds(pid) - cpu for pid, cpu in zip(pids, before, strict=True)]
            inotify, polling, alone = (100 * cpu / elapsed for cpu in used)
            figures.append(
                {
                    "inotify_cpu_pct": inotify,
                    "polling_cpu_pct": polling,
                    "observer_cpu_pct": alone,
                    "inotify_busiest_second_ms": 1000 * max(seconds, default=0.0),
                }
            )
    finally:
        for uploader in uploaders:
            uploader.stop()
        if observer is not None:
            observer.kill()
            observer.wait()
    for kind, box in boxes.items():
        assert len(station_files(box)) == files, f"{kind}: files went missing"
    return figures


def _per_second(pid: int, until: float) -> list[float]:
    """The CPU seconds the tree under `pid` used in each second until `until`: whether an idle window's figure
    is a steady cost or one busy moment (a reading far above the usual one, seen only in full bench runs)."""
    used, last = [], procs.cpu_seconds(pid)
    while (left := until - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        now = procs.cpu_seconds(pid)
        used.append(now - last)
        last = now
    return used


def _quiet(pid: int, *, limit: float = 1.0, timeout: float) -> None:
    """Block until the tree under `pid` used at most `limit` % of a core over one second (its start-up is over)."""
    deadline = time.monotonic() + timeout
    before, started = procs.cpu_seconds(pid), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        now, ended = procs.cpu_seconds(pid), time.monotonic()
        if 100 * (now - before) / (ended - started) <= limit:
            return
        before, started = now, ended
    raise TimeoutError(f"the uploader still busy {timeout:.0f} s after its start-up")


def backfill(
    work: Path,
    *,
    files: int = 100_000,
    delay: float = 0.02,
    after: float = 3.0,
    settle: float = 2.0,
    quiet: float = 3.0,
    settle_timeout: float = 60.0,
    outbox: Path | None = None,
) -> Figures:
    """`run` started on an outbox of `files` old files: seconds to the first upload, and the memory it takes.

    The clock runs from the start of `run` to a first file on the server under its final name, whole,
    and gone locally. Memory: the summed RSS of the uploader's processes, sampled every 50 ms, less
    the peak of `run` on an empty outbox (`_empty_outbox_peak`); to `after` s past the first upload
    (`rss_growth_mib`), and until it has not risen for `quiet` s (`settled_growth_mib`, None if it
    still rose after `settle_timeout` s). Then SIGTERM: the rest of the backlog is not waited for.
    `outbox` may be kept between runs: only the files a run uploaded are written again.
    """
    outbox = outbox or work / "outbox-backfill"
    _dated_outbox(outbox, files)
    with ftp_server(work, delay) as server:
        idle_peak, idle_hwm = _empty_outbox_peak(work, server, settle)
        uploader = Uploader(work, outbox, server.port, server.password, stats_interval=STATS_INTERVAL)
        uploader.start(wait=False)
        try:
            figures = _watch_backfill(uploader, server.root / REMOTE_STATION, after, quiet, settle_timeout)
        finally:
            stopping = time.monotonic()
            code = uploader.stop()
            stop_s = time.monotonic() - stopping
        assert code == 0, uploader.log()[-2000:]
        delivered = _checked_delivery(server, outbox, files)
    settled = figures["settled_peak"]
    return {
        **figures,
        "idle_rss_mib": idle_peak,
        "rss_growth_mib": figures["peak_rss_mib"] - idle_peak,  # type: ignore[operator]
        "settled_growth_mib": None if settled is None else settled - idle_peak,
        "hwm_growth_mib": figures["hwm"] - idle_hwm,  # type: ignore[operator]
        "delivered": float(len(delivered)),
        "after_s": after,
        "stop_s": stop_s,
    }


def _watch_backfill(uploader: Uploader, station: Path, after: float, quiet: float, settle_timeout: float) -> Figures:
    """The first delivery's time and the summed RSS peaks of a backfilling `run` (see `backfill`)."""
    with procs.RssSampler(uploader.pid, RSS_INTERVAL) as busy:
        first = _first_delivery(station, uploader.outbox, uploader) - uploader.started_at
        time.sleep(after)
        early_peak = busy.peak
        settled = busy.settled(quiet, settle_timeout)
        return {
            "first_upload_s": first,
            "peak_rss_mib": early_peak,
            "settled_s": time.monotonic() - uploader.started_at if settled else None,
            "settled_peak": busy.peak if settled else None,
            "queued": _queued(uploader),
            "hwm": procs.peak_rss_mib(uploader.pid),
        }


def _empty_outbox_peak(work: Path, server: Server, settle: float) -> tuple[float, float]:
    """The summed RSS peak (sampled) and summed VmHWM of `run` on an empty outbox, to `settle` s after it watches."""
    empty = Uploader(work, fresh_dir(work / "outbox-empty"), server.port, server.password)
    empty.start(wait=False)
    try:
        with procs.RssSampler(empty.pid, RSS_INTERVAL) as idle:
            empty.wait_for_log("watching ", 60)
            time.sleep(settle)
        return idle.peak, procs.peak_rss_mib(empty.pid)
    finally:
        assert empty.stop() == 0, empty.log()[-2000:]


def _checked_delivery(server: Server, outbox: Path, files: int) -> list[Path]:
    """The files on the server, each whole and gone locally, none lost, no temporary name left."""
    station = server.root / REMOTE_STATION
    delivered = [p for p in station.rglob("*") if p.is_file() and p.name != "SHA256SUMS"] if station.exists() else []
    assert delivered, "nothing delivered"
    assert all(p.read_bytes() == b"x" * BACKFILL_SIZE for p in delivered), "a delivered file differs"
    assert not leftovers(server.root), leftovers(server.root)[:5]
    assert not any(_local_of(outbox, p.name).exists() for p in delivered), "a delivered file is still local"
    left = len(station_files(outbox))
    assert left + len(delivered) == files, f"{files - left - len(delivered)} files lost"
    return delivered


def _queued(uploader: Uploader) -> float | None:
    """The files on the sink's queues (live + backfill) at its last statistics line."""
    lines = re.findall(r"stats: queued (\d+) live \+ (\d+) backfill", uploader.log())
    return float(sum(int(count) for count in lines[-1])) if lines else None


def _local_of(outbox: Path, name: str) -> Path:
    """The outbox path of a backfill file (`audio/<day>/<name>`, the day is in the name)."""
    return outbox / "audio" / name.split("@")[1] / name


def _first_delivery(station: Path, outbox: Path, uploader: Uploader, timeout: float = 120) -> float:
    """The time a first file is under its final name on the server, with its size, and gone from the outbox."""
    deadline = time.monotonic() + timeout
    while True:
        now = time.monotonic()
        for folder, _, names in os.walk(station):
            for name in names:
                if name.startswith("."):
                    continue
                with contextlib.suppress(OSError):
                    if (
                        os.stat(os.path.join(folder, name)).st_size == BACKFILL_SIZE
                        and not _local_of(outbox, name).exists()
                    ):
                        return now
        if uploader.process is not None and uploader.process.poll() is not None:
            raise RuntimeError(f"the uploader exited ({uploader.process.returncode}):\n{uploader.log()[-3000:]}")
        if now > deadline:
            raise TimeoutError(f"no upload within {timeout} s:\n{uploader.log()[-3000:]}")
        time.sleep(0.005)
