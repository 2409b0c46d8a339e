"""One function per workload of the issue's table; each does one run and returns its figures.

Every workload checks what it measured: the files are on the server under their final names
with the right size (or, with `exact`, the right bytes), no temporary name is left, and the
outbox no longer holds them. So the default suite can run the same functions at tiny sizes
(`tests/test_bench_smoke.py`) for correctness only, and the bench never reports a fast failure.

The uploader runs as `beemon-uploader run`; the clock starts when the files are moved into the
outbox of a running, idle uploader, and stops when the last one is on the server and gone locally.
Throughput figures leave out the debounce (no file may go before it has been quiet that long:
a fixed delay at the start, not a cost per file); the latency workloads include it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import statistics
import threading
import time
from pathlib import Path

from tests.benchmarks import baselines, procs
from tests.benchmarks.harness import (
    Server,
    Uploader,
    file_name,
    free_port,
    fresh_dir,
    ftp_server,
    leftovers,
    remote_dir,
    verify,
    write_files,
)
from tests.helpers import station_files

Figures = dict[str, float | None]
MB = 1_000_000
#: Long enough for the slowest full-size run on a slow machine; a hang still ends.
TIMEOUT = 900.0
#: Debounce of the throughput runs: a fixed delay before the first upload, not a cost per file.
THROUGHPUT_DEBOUNCE = 0.2
OLD = time.time() - 86_400  # an mtime the backfill takes at once
#: The backfill row's files (`_dated_outbox`'s size) and where they land on the server.
BACKFILL_SIZE = 100
REMOTE_STATION = Path("data") / "bench"
#: How often the backfill row samples the summed RSS of the uploader's processes.
RSS_INTERVAL = 0.05
#: Its uploader's statistics lines, which tell when every file is queued.
STATS_INTERVAL = 0.5


def _check(server: Server, names: list[str], size: int, outbox: Path, *, exact: bool, sensor: str = "audio") -> None:
    remote = remote_dir(server.root, sensor)
    problems = verify(remote, names, size, exact=exact) + [f"left on the server: {n}" for n in leftovers(server.root)]
    still_local = [p.name for p in station_files(outbox)]
    assert not problems, problems[:5]
    assert not still_local, f"{len(still_local)} files still in the outbox: {still_local[:5]}"


def _per_file(counts: dict[str, int], files: int) -> float:
    """Commands the server received per file, logins and folders included."""
    return round(sum(counts.values()) / files, 2) if files else 0.0


def ours_drop_in(
    work: Path, server: Server, names: list[str], size: int, *, debounce: float, connections: int, exact: bool
) -> Figures:
    """Move `names` into a running uploader's outbox at once; seconds until all are verified and gone, less the debounce."""
    outbox = fresh_dir(work / "outbox")
    folder = outbox / "audio"
    folder.mkdir()
    staging = fresh_dir(work / "staging-ours")
    write_files(staging, names, size)
    _settle_disk()
    uploader = Uploader(work, outbox, server.port, server.password, debounce=debounce, connections=connections)
    with uploader:
        idle_peak = procs.peak_rss_mib(uploader.pid)
        cpu_before = procs.cpu_seconds(uploader.pid)
        started = time.monotonic()
        for name in names:
            os.rename(staging / name, folder / name)
        finished = baselines_wait(names, server, folder)
        cpu = procs.cpu_seconds(uploader.pid) - cpu_before
        peak = procs.peak_rss_mib(uploader.pid)
    assert uploader.process is not None and uploader.process.returncode == 0, uploader.log()[-2000:]
    _check(server, names, size, outbox, exact=exact)
    return {
        "seconds": finished - started - debounce,
        "cpu_seconds": cpu,
        "idle_peak_rss_mib": idle_peak,
        "peak_rss_mib": peak,
    }


def _settle_disk() -> None:
    """Write back what earlier steps left dirty, so that no timed phase pays for another's writes.

    Writes into the page cache ran at very different speeds depending on what was written before
    (see `large_files`); a phase should not also start with another's write-back pending.
    """
    os.sync()


def baselines_wait(names: list[str], server: Server, folder: Path) -> float:
    from tests.benchmarks.harness import wait_delivered

    return wait_delivered(names, remote_dir(server.root), folder, timeout=TIMEOUT)


def _staged(work: Path, label: str, names: list[str], size: int) -> tuple[Path, list[Path]]:
    folder = fresh_dir(work / f"staging-{label}")
    return folder, write_files(folder, names, size)


def small_files(
    work: Path,
    *,
    files: int = 2000,
    size: int = 4096,
    delay: float = 0.0,
    per_login_files: int | None = None,
    connections: int = 4,
    with_lftp: bool = True,
    exact: bool = True,
) -> Figures:
    """Files per second: the uploader, the one-login-per-file loop, and lftp mirror -R, on the same server kind.

    `per_login_files` (default `files`) runs the slow loop on fewer files; its rate per file does not depend on
    the count, since it handles one file at a time.
    """
    names = [file_name(i) for i in range(files)]
    figures: Figures = {}
    with ftp_server(work, delay) as server:
        ours = ours_drop_in(
            work, server, names, size, debounce=THROUGHPUT_DEBOUNCE, connections=connections, exact=exact
        )
        counts = server.stop()
    figures["ours_files_per_s"] = files / ours["seconds"]
    figures["ours_commands_per_file"] = _per_file(counts, files)
    figures["idle_peak_rss_mib"] = ours["idle_peak_rss_mib"]
    figures["peak_rss_mib"] = ours["peak_rss_mib"]

    loop_names = names[: per_login_files or files]
    _, paths = _staged(work, "loop", loop_names, size)
    with ftp_server(work, delay) as server:
        baselines.make_remote_dir(server.port, server.password, "/loop")
        loop = baselines.per_login_loop(server.port, server.password, paths, "/loop")
        counts = server.stop()
        assert not verify(server.root / "loop", loop_names, size, exact=exact)
    figures["per_login_files_per_s"] = len(loop_names) / loop.seconds
    figures["per_login_commands_per_file"] = _per_file(counts, len(loop_names))

    figures["lftp_files_per_s"] = figures["lftp_commands_per_file"] = None
    if with_lftp and baselines.lftp_available():
        folder, _ = _staged(work, "lftp", names, size)
        with ftp_server(work, delay) as server:
            lftp = baselines.lftp_mirror(server.port, server.password, folder, "/lftp", parallel=connections)
            counts = server.stop()
            assert not verify(server.root / "lftp", names, size, exact=exact)
        figures["lftp_files_per_s"] = files / lftp.seconds
        figures["lftp_commands_per_file"] = _per_file(counts, files)
    return figures


def large_files(
    work: Path, *, files: int = 10, size: int = 50 * MB, connections: int = 4, with_lftp: bool = True
) -> Figures:
    """MB/s and client CPU s/GB: the uploader, one ftplib session (1 MiB blocks), cp, and lftp.

    Each phase starts from the same state: what the one before wrote is deleted once checked (and
    the rest written back, `_settle_disk`). Kept, it made whichever phase came later pay for the
    page cache of the earlier ones: the same ftplib session measured 2,900 MB/s run first and
    430 MB/s run after the others.
    """
    names = [file_name(i, tag="big") for i in range(files)]
    total = files * size
    figures: Figures = {}
    with ftp_server(work) as server:
        ours = ours_drop_in(
            work, server, names, size, debounce=THROUGHPUT_DEBOUNCE, connections=connections, exact=False
        )
    shutil.rmtree(server.root)
    figures["ours_mb_per_s"] = total / MB / ours["seconds"]
    figures["ours_cpu_s_per_gb"] = ours["cpu_seconds"] / (total / 1e9)

    folder, paths = _staged(work, "session", names, size)
    _settle_disk()
    with ftp_server(work) as server:
        baselines.make_remote_dir(server.port, server.password, "/session")
        session = baselines.single_session(server.port, server.password, paths, "/session")
        assert not verify(server.root / "session", names, size, exact=False)
    shutil.rmtree(server.root)
    figures["session_mb_per_s"] = total / MB / session.seconds

    _settle_disk()
    copy = baselines.copy_files(paths, fresh_dir(work / "copy"))
    shutil.rmtree(work / "copy")
    figures["cp_mb_per_s"] = total / MB / copy.seconds

    figures["lftp_mb_per_s"] = figures["lftp_cpu_s_per_gb"] = None
    if with_lftp and baselines.lftp_available():
        _settle_disk()
        with ftp_server(work) as server:
            lftp = baselines.lftp_mirror(server.port, server.password, folder, "/lftp", parallel=connections)
            assert not verify(server.root / "lftp", names, size, exact=False)
        shutil.rmtree(server.root)
        figures["lftp_mb_per_s"] = total / MB / lftp.seconds
        figures["lftp_cpu_s_per_gb"] = lftp.cpu_seconds / (total / 1e9)
    return figures


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
    from tests.benchmarks.harness import content

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
        _check(server, names, size, outbox, exact=exact)
    return {"p50_s": _percentile(latencies, 50), "p95_s": _percentile(latencies, 95), "debounce_s": debounce}


def _percentile(values: list[float], percent: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(percent) - 1]


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
            time.sleep(window / slices)
            elapsed = time.monotonic() - started
            used = [procs.cpu_seconds(pid) - cpu for pid, cpu in zip(pids, before, strict=True)]
            inotify, polling, alone = (100 * cpu / elapsed for cpu in used)
            figures.append({"inotify_cpu_pct": inotify, "polling_cpu_pct": polling, "observer_cpu_pct": alone})
    finally:
        for uploader in uploaders:
            uploader.stop()
        if observer is not None:
            observer.kill()
            observer.wait()
    for kind, box in boxes.items():
        assert len(station_files(box)) == files, f"{kind}: files went missing"
    return figures


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

    The clock starts with `beemon-uploader run` and stops when a first file is on the server under its
    final name, whole, and gone from the outbox. Memory is the summed RSS of the uploader's processes,
    sampled every 50 ms from the start; the growth is its peak minus the peak of the same sampling of an
    uploader started on an empty outbox in this run (from its start to `settle` s after it watches).
    Two windows: to `after` s past the first upload (`rss_growth_mib`), and on until the peak has not
    risen for `quiet` s (`settled_growth_mib`, at `settled_s`, with `queued` files on the sink's
    queues then; None if it still rose after `settle_timeout` s): what holding the backlog costs.
    Then SIGTERM: the rest of the backlog is not waited for (at `delay` per reply it would take half
    an hour). The difference of summed VmHWM (each process's own peak, an upper bound) at the end
    comes along as `hwm_growth_mib`.

    `outbox` may be kept between runs: only the files a run uploaded are written again.
    """
    outbox = outbox or work / "outbox-backfill"
    _dated_outbox(outbox, files)
    with ftp_server(work, delay) as server:
        empty = Uploader(work, fresh_dir(work / "outbox-empty"), server.port, server.password)
        empty.start(wait=False)
        try:
            with procs.RssSampler(empty.pid, RSS_INTERVAL) as idle:
                empty.wait_for_log("watching ", 60)
                time.sleep(settle)
            idle_hwm = procs.peak_rss_mib(empty.pid)
        finally:
            assert empty.stop() == 0, empty.log()[-2000:]
        station = server.root / REMOTE_STATION
        uploader = Uploader(work, outbox, server.port, server.password, stats_interval=STATS_INTERVAL)
        uploader.start(wait=False)
        try:
            with procs.RssSampler(uploader.pid, RSS_INTERVAL) as busy:
                first = _first_delivery(station, outbox, uploader) - uploader.started_at
                time.sleep(after)
                early_peak = busy.peak
                settled = busy.settled(quiet, settle_timeout)
                settled_s = time.monotonic() - uploader.started_at
                queued = _queued(uploader)
                hwm = procs.peak_rss_mib(uploader.pid)
        finally:
            stopping = time.monotonic()
            code = uploader.stop()
            stop_s = time.monotonic() - stopping
        assert code == 0, uploader.log()[-2000:]
        delivered = (
            [p for p in station.rglob("*") if p.is_file() and p.name != "SHA256SUMS"] if station.exists() else []
        )
        assert delivered, "nothing delivered"
        assert all(p.read_bytes() == b"x" * BACKFILL_SIZE for p in delivered), "a delivered file differs"
        assert not leftovers(server.root), leftovers(server.root)[:5]
        assert not any(_local_of(outbox, p.name).exists() for p in delivered), "a delivered file is still local"
        left = len(station_files(outbox))
        assert left + len(delivered) == files, f"{files - left - len(delivered)} files lost"
    return {
        "first_upload_s": first,
        "idle_rss_mib": idle.peak,
        "peak_rss_mib": early_peak,
        "rss_growth_mib": early_peak - idle.peak,
        "settled_s": settled_s if settled else None,
        "settled_peak_rss_mib": busy.peak if settled else None,
        "settled_growth_mib": busy.peak - idle.peak if settled else None,
        "queued": queued,
        "hwm_growth_mib": hwm - idle_hwm,
        "delivered": float(len(delivered)),
        "after_s": after,
        "stop_s": stop_s,
    }


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
