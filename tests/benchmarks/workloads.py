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

import os
import shutil
import time
from pathlib import Path

from tests.benchmarks import baselines, memory, procs
from tests.benchmarks.departures import Departures
from tests.benchmarks.harness import (
    file_name,
    fresh_dir,
    leftovers,
    remote_dir,
    verify,
    write_files,
)
from tests.benchmarks.servers import Server, ftp_server, uploader
from tests.helpers import station_files

Figures = dict[str, float | None]
MB = 1_000_000
#: Long enough for the slowest full-size run on a slow machine; a hang still ends.
TIMEOUT = 900.0
#: Debounce of the throughput runs: a fixed delay before the first upload, not a cost per file.
THROUGHPUT_DEBOUNCE = 0.2
OLD = time.time() - 86_400  # an mtime that is quiet at once


def check(server: Server, names: list[str], size: int, outbox: Path, *, exact: bool, sensor: str = "audio") -> None:
    remote = remote_dir(server.root, sensor)
    problems = verify(remote, names, size, exact=exact) + [f"left on the server: {n}" for n in leftovers(server.root)]
    still_local = [p.name for p in station_files(outbox)]
    assert not problems, problems[:5]
    assert not still_local, f"{len(still_local)} files still in the outbox: {still_local[:5]}"


def _per_file(counts: dict[str, int], files: int) -> float | None:
    """Commands the server received per file, logins and folders included (None: the server does not count)."""
    total = sum(n for verb, n in counts.items() if ":" not in verb)  # "SHA256SUMS:STOR": counted once already
    return round(total / files, 2) if files and counts else None


#: Seconds an uploader idles after it watches before its PSS is read (its sessions logged in).
IDLE_SETTLE = 1.0


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
    running = uploader(work, outbox, server, debounce=debounce, connections=connections)
    with running:
        idle_peak = procs.peak_rss_mib(running.pid)
        time.sleep(IDLE_SETTLE)  # the sink's logins done: what an idle station holds
        idle_pss = memory.pss_mib(running.pid)
        cpu_before, server_before = procs.cpu_seconds(running.pid), procs.cpu_seconds(server.pid)
        with Departures(folder, names) as departures:
            started = time.monotonic()
            for name in names:
                os.rename(staging / name, folder / name)
            finished = baselines_wait(names, server, folder, departures)
        cpu = procs.cpu_seconds(running.pid) - cpu_before
        server_cpu = procs.cpu_seconds(server.pid) - server_before
        peak = procs.peak_rss_mib(running.pid)
    assert running.process is not None and running.process.returncode == 0, running.log()[-2000:]
    check(server, names, size, outbox, exact=exact)
    return {
        "seconds": finished - started - debounce,
        "cpu_seconds": cpu,
        "server_cpu_seconds": server_cpu,
        "idle_peak_rss_mib": idle_peak,
        "idle_pss_mib": idle_pss,
        "peak_rss_mib": peak,
    }


def _settle_disk() -> None:
    """Write back what earlier steps left dirty, so that no timed phase pays for another's writes.

    Writes into the page cache ran at very different speeds depending on what was written before
    (see `large_files`); a phase should not also start with another's write-back pending.
    """
    os.sync()


def baselines_wait(names: list[str], server: Server, folder: Path, departures: Departures | None = None) -> float:
    """When the last of `names` was delivered: heard from the kernel (`departures`, the last local delete),
    then checked on both sides; polled (every 10 ms) without `departures` or when the check does not hold."""
    from tests.benchmarks.harness import delivered, wait_delivered

    remote = remote_dir(server.root)
    if departures is not None and departures.wait(len(names), TIMEOUT):
        finished = time.monotonic()
        if delivered(names, remote, folder):
            return finished
    return wait_delivered(names, remote, folder, timeout=TIMEOUT)


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
    kind: str = "pyftpdlib",
) -> Figures:
    """Files per second: the uploader, the one-login-per-file loop, and lftp mirror -R, on the same server kind.

    `per_login_files` (default `files`) runs the slow loop on fewer files; its rate per file does not depend on
    the count, since it handles one file at a time.
    """
    names = [file_name(i) for i in range(files)]
    figures: Figures = {}
    with ftp_server(work, delay, kind) as server:
        ours = ours_drop_in(
            work, server, names, size, debounce=THROUGHPUT_DEBOUNCE, connections=connections, exact=exact
        )
        counts = server.stop()
    figures["ours_files_per_s"] = files / ours["seconds"]
    figures["ours_commands_per_file"] = _per_file(counts, files)
    figures["ours_cpu_ms_per_file"] = 1000 * ours["cpu_seconds"] / files
    figures["server_cpu_ms_per_file"] = 1000 * ours["server_cpu_seconds"] / files
    figures["idle_peak_rss_mib"] = ours["idle_peak_rss_mib"]
    figures["idle_pss_mib"] = ours["idle_pss_mib"]
    figures["peak_rss_mib"] = ours["peak_rss_mib"]
    figures.update(
        small_baselines(
            work, names, size, delay=delay, kind=kind, loop_files=per_login_files, lftp=with_lftp, exact=exact
        )
    )
    return figures


def small_baselines(
    work: Path,
    names: list[str],
    size: int,
    *,
    delay: float,
    kind: str,
    loop_files: int | None,
    lftp: bool,
    exact: bool,
    connections: int = 4,  # as `run`'s
) -> Figures:
    """The one-login-per-file loop (on the first `loop_files` names) and lftp mirror -R, each on a fresh server."""
    figures: Figures = {}
    loop_names = names[: loop_files or len(names)]
    _, paths = _staged(work, "loop", loop_names, size)
    with ftp_server(work, delay, kind) as server:
        baselines.make_remote_dir(server, "/loop")
        loop = baselines.per_login_loop(server, paths, "/loop")
        counts = server.stop()
        assert not verify(server.root / "loop", loop_names, size, exact=exact)
    figures["per_login_files_per_s"] = len(loop_names) / loop.seconds
    figures["per_login_commands_per_file"] = _per_file(counts, len(loop_names))

    figures["lftp_files_per_s"] = figures["lftp_commands_per_file"] = figures["lftp_cpu_ms_per_file"] = None
    if lftp and baselines.lftp_available():
        folder, _ = _staged(work, "lftp", names, size)
        with ftp_server(work, delay, kind) as server:
            mirror = baselines.lftp_mirror(server, folder, "/lftp", parallel=connections)
            counts = server.stop()
            assert not verify(server.root / "lftp", names, size, exact=exact)
        figures["lftp_files_per_s"] = len(names) / mirror.seconds
        figures["lftp_commands_per_file"] = _per_file(counts, len(names))
        figures["lftp_cpu_ms_per_file"] = 1000 * mirror.cpu_seconds / len(names)
    return figures


def once_files(
    work: Path,
    *,
    files: int = 200,
    size: int = 4096,
    delay: float = 0.02,
    per_login_files: int | None = None,
    connections: int = 4,
    with_lftp: bool = True,
    kind: str = "pyftpdlib",
) -> Figures:
    """`beemon-uploader run --once` end to end: files per second from the start of the process to its exit.

    The files are in the outbox before it starts, quiet for long (no debounce wait); at the exit
    every one must be on the server, whole, and gone locally, and the exit code 0. The baselines
    (the loop, lftp mirror -R) run on fresh servers of the same kind, as in `small_files`.
    """
    names = [file_name(i, tag="once") for i in range(files)]
    outbox = fresh_dir(work / "outbox")
    write_files(outbox / "audio", names, size, mtime=OLD)
    _settle_disk()
    with ftp_server(work, delay, kind) as server:
        once = uploader(work, outbox, server, connections=connections)
        started = time.monotonic()
        code = once.run_once(TIMEOUT)
        seconds = time.monotonic() - started
        counts = server.stop()
        assert code == 0, once.log()[-2000:]
        check(server, names, size, outbox, exact=True)
    figures: Figures = {"ours_files_per_s": files / seconds, "ours_seconds": seconds}
    figures["ours_commands_per_file"] = _per_file(counts, files)
    loop = small_baselines(
        work, names, size, delay=delay, kind=kind, loop_files=per_login_files, lftp=with_lftp, exact=True
    )
    return {**figures, **loop}


def large_files(
    work: Path,
    *,
    files: int = 10,
    size: int = 50 * MB,
    connections: int = 4,
    with_lftp: bool = True,
    kind: str = "pyftpdlib",
) -> Figures:
    """MB/s and client CPU s/GB: the uploader, one ftplib session (1 MiB blocks), cp, and lftp.

    Each phase starts from the same state: what the one before wrote is deleted once checked, the rest
    written back (`_settle_disk`). Kept, it made a later phase pay for the page cache of the earlier
    ones: the same ftplib session measured 2,900 MB/s run first and 430 MB/s after the others.
    """
    names = [file_name(i, tag="big") for i in range(files)]
    total = files * size
    figures: Figures = {}
    with ftp_server(work, 0, kind) as server:
        ours = ours_drop_in(
            work, server, names, size, debounce=THROUGHPUT_DEBOUNCE, connections=connections, exact=False
        )
    figures["ours_mb_per_s"] = total / MB / ours["seconds"]
    figures["ours_cpu_s_per_gb"] = ours["cpu_seconds"] / (total / 1e9)

    folder, paths = _staged(work, "session", names, size)
    _settle_disk()
    with ftp_server(work, 0, kind) as server:
        baselines.make_remote_dir(server, "/session")
        session = baselines.single_session(server, paths, "/session")
        assert not verify(server.root / "session", names, size, exact=False)
    figures["session_mb_per_s"] = total / MB / session.seconds

    _settle_disk()
    copy = baselines.copy_files(paths, fresh_dir(work / "copy"))
    shutil.rmtree(work / "copy")
    figures["cp_mb_per_s"] = total / MB / copy.seconds

    figures["lftp_mb_per_s"] = figures["lftp_cpu_s_per_gb"] = None
    if with_lftp and baselines.lftp_available():
        _settle_disk()
        with ftp_server(work, 0, kind) as server:
            lftp = baselines.lftp_mirror(server, folder, "/lftp", parallel=connections)
            assert not verify(server.root / "lftp", names, size, exact=False)
        figures["lftp_mb_per_s"] = total / MB / lftp.seconds
        figures["lftp_cpu_s_per_gb"] = lftp.cpu_seconds / (total / 1e9)
    return figures
