"""`python -m tests.benchmarks`: run every workload several times, print the table, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks import report, workloads
from tests.benchmarks.baselines import lftp_available
from tests.benchmarks.workloads import MB, Figures

MIB = 1.048576  # MB per MiB: /proc reports KiB, the targets are in MB


@dataclass(frozen=True)
class Sizes:
    """The issue's sizes (`full`) and a quick set to try the bench out in a minute."""

    small: int = 2000
    small_delayed: int = 500
    per_login_delayed: int = 170  # per run; see the note in `notes()`
    large: int = 10
    large_size: int = 50 * MB
    backlog: int = 40
    backlog_size: int = 8 * MB
    live: int = 200
    idle_files: int = 9000
    idle_window: float = 60.0
    backfill: int = 100_000


QUICK = Sizes(200, 60, 20, 3, 5 * MB, 8, 1 * MB, 20, 900, 5.0, 5000)


@dataclass
class Series:
    """The figures of every run of one workload."""

    runs: list[Figures] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if run.get(key) is not None]
        return statistics.median(values) if values else None  # type: ignore[type-var]

    def ratio(self, top: str, bottom: str) -> float | None:
        values = [run[top] / run[bottom] for run in self.runs if run.get(top) and run.get(bottom)]  # type: ignore[operator]
        return statistics.median(values) if values else None


def _repeat(label: str, runs: int, action: Callable[[Path], Figures]) -> Series:
    series = Series()
    for index in range(runs):
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="beemon-bench-") as folder:
            series.runs.append(action(Path(folder)))
        print(f"  {label} run {index + 1}/{runs}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return series


def _mb(mib: float | None) -> float | None:
    return None if mib is None else mib * MIB


def _f(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def collect(sizes: Sizes, runs: int, only: set[str]) -> tuple[list[list[str]], list[str]]:
    rows: list[list[str]] = []
    notes: list[str] = []
    lftp = lftp_available()
    if not lftp:
        notes.append("lftp is not installed: its baselines are n/a (`apt-get install lftp` adds them).")
    small = delayed = None

    def wanted(name: str) -> bool:
        return not only or name in only

    if wanted("small"):
        small = _repeat("small files, loopback", runs, lambda w: workloads.small_files(w, files=sizes.small))
        vs_lftp = small.ratio("ours_files_per_s", "lftp_files_per_s")
        rows.append(
            [
                f"{sizes.small:,} files of 4 KiB, loopback",
                "files/s, end to end",
                _f(small.median("ours_files_per_s")),
                f"one login per file {_f(small.median('per_login_files_per_s'))}; "
                f"lftp mirror -R --parallel=4 {_f(small.median('lftp_files_per_s'))}",
                f"{_f(vs_lftp, 2)}x lftp; {_f(small.ratio('ours_files_per_s', 'per_login_files_per_s'), 1)}x loop",
                ">= 1.5x lftp, 4 connections, rename + size check on",
                _met(None if vs_lftp is None else vs_lftp >= 1.5),
            ]
        )
        notes.append(
            "Commands per file (server's count, logins and folders included), loopback: "
            f"beemon-uploader {_f(small.median('ours_commands_per_file'), 2)}, "
            f"one login per file {_f(small.median('per_login_commands_per_file'), 2)}, "
            f"lftp {_f(small.median('lftp_commands_per_file'), 2)}."
        )
    if wanted("delayed"):
        delayed = _repeat(
            "small files, 20 ms per reply",
            runs,
            lambda w: workloads.small_files(
                w, files=sizes.small_delayed, delay=0.02, per_login_files=sizes.per_login_delayed
            ),
        )
        vs_loop = delayed.ratio("ours_files_per_s", "per_login_files_per_s")
        vs_lftp = delayed.ratio("ours_files_per_s", "lftp_files_per_s")
        ok = None if vs_loop is None else vs_loop >= 10 and (vs_lftp is None or vs_lftp >= 1)
        rows.append(
            [
                f"{sizes.small_delayed:,} files of 4 KiB, 20 ms per reply",
                "files/s",
                _f(delayed.median("ours_files_per_s"), 1),
                f"one login per file {_f(delayed.median('per_login_files_per_s'), 1)}; "
                f"lftp {_f(delayed.median('lftp_files_per_s'), 1)}",
                f"{_f(vs_loop, 1)}x loop; {_f(vs_lftp, 2)}x lftp",
                ">= 10x loop; >= lftp at 4 connections",
                _met(ok),
            ]
        )
        if sizes.per_login_delayed < sizes.small_delayed:
            notes.append(
                f"At 20 ms per reply the one-login-per-file loop uploads {sizes.per_login_delayed} of the "
                f"{sizes.small_delayed} files per run (it takes one file at a time, so its rate does not depend "
                f"on the count); all {sizes.small_delayed} would add about "
                f"{runs * (sizes.small_delayed - sizes.per_login_delayed) / (delayed.median('per_login_files_per_s') or 1) / 60:.0f} "
                "minutes to the bench."
            )
    if wanted("large"):
        large = _repeat(
            "large files", runs, lambda w: workloads.large_files(w, files=sizes.large, size=sizes.large_size)
        )
        vs_session = large.ratio("ours_mb_per_s", "session_mb_per_s")
        label = f"{sizes.large} files of {sizes.large_size // MB} MB, loopback"
        rows.append(
            [
                label,
                "MB/s",
                _f(large.median("ours_mb_per_s")),
                f"one ftplib session, 1 MiB blocks {_f(large.median('session_mb_per_s'))}; "
                f"cp {_f(large.median('cp_mb_per_s'))}; lftp {_f(large.median('lftp_mb_per_s'))}",
                f"{_f(vs_session, 2)}x session",
                ">= 0.9x the single ftplib session",
                _met(None if vs_session is None else vs_session >= 0.9),
            ]
        )
        vs_lftp_cpu = large.ratio("ours_cpu_s_per_gb", "lftp_cpu_s_per_gb")
        rows.append(
            [
                "the same files",
                "client CPU s/GB (user + sys, all processes)",
                _f(large.median("ours_cpu_s_per_gb"), 2),
                f"lftp mirror -R {_f(large.median('lftp_cpu_s_per_gb'), 2)}",
                f"{_f(vs_lftp_cpu, 2)}x lftp",
                "<= lftp's",
                _met(None if vs_lftp_cpu is None else vs_lftp_cpu <= 1),
            ]
        )
    if wanted("backlog"):
        backlog = _repeat("backlog", runs, lambda w: workloads.backlog(w, files=sizes.backlog, size=sizes.backlog_size))
        ratio = backlog.ratio("fresh_latency_s", "target_s")
        rows.append(
            [
                f"backlog of {sizes.backlog} files of {sizes.backlog_size // MB} MB (audio, video), 20 ms per reply, "
                "one fresh file written while it drains",
                "close -> visible, fresh file",
                _f(backlog.median("fresh_latency_s"), 3, " s"),
                f"backlog files still queued then: {_f(backlog.median('backlog_left'))}",
                f"{_f(ratio, 2)}x target",
                f"<= debounce 0.5 s + longest transfer ({_f(backlog.median('longest_transfer_s'), 3, ' s')})",
                _met(None if ratio is None else ratio <= 1),
            ]
        )
    if wanted("live"):
        live = _repeat("live files", runs, lambda w: workloads.live_latency(w, files=sizes.live))
        p50 = live.median("p50_s")
        rows.append(
            [
                f"{sizes.live} files written 5 per second, loopback, debounce 0.5 s",
                "close -> visible, p50 / p95",
                f"{_f(p50, 3)} / {_f(live.median('p95_s'), 3)} s",
                "",
                "",
                "p50 <= 0.6 s",
                _met(None if p50 is None else p50 <= 0.6),
            ]
        )
    if wanted("idle"):
        with tempfile.TemporaryDirectory(prefix="beemon-bench-") as folder:
            idle = Series(
                workloads.idle_cpu(Path(folder), files=sizes.idle_files, window=sizes.idle_window, slices=runs)
            )
        inotify = idle.median("inotify_cpu_pct")
        rows.append(
            [
                f"a {sizes.idle_files:,}-file outbox, idle for {sizes.idle_window:.0f} s (server down)",
                "CPU % of one core",
                f"inotify {_f(inotify, 2)} %; polling {_f(idle.median('polling_cpu_pct'), 2)} %",
                f"watchdog's polling observer alone {_f(idle.median('observer_cpu_pct'), 2)} %",
                f"polling {_f(idle.ratio('polling_cpu_pct', 'observer_cpu_pct'), 2)}x the observer alone",
                "inotify <= 0.5 %; report polling",
                _met(None if inotify is None else inotify <= 0.5),
            ]
        )
    if small is not None:
        idle_peak = small.median("idle_peak_rss_mib")
        busy_peak = small.median("peak_rss_mib")
        peak = max(v for v in (idle_peak, busy_peak) if v is not None) if idle_peak or busy_peak else None
        rows.append(
            [
                "all processes of `run`, idle and under the first workload",
                "peak RSS, summed",
                f"idle {_f(idle_peak and idle_peak * MIB, 0, ' MB')}; under load {_f(busy_peak and busy_peak * MIB, 0, ' MB')}",
                "",
                "",
                "<= 120 MB",
                _met(None if peak is None else peak * MIB <= 120),
            ]
        )
    if wanted("backfill"):
        with tempfile.TemporaryDirectory(prefix="beemon-bench-outbox-") as kept:
            scale = _repeat("backfill", runs, lambda w: workloads.backfill(w, files=sizes.backfill, outbox=Path(kept)))
        first, growth = scale.median("first_upload_s"), scale.median("rss_growth_mib")
        held, after = scale.median("settled_growth_mib"), scale.median("after_s")
        holding = (
            f"+{_f(_mb(held), 0, ' MB')} once it stops growing ({_f(scale.median('settled_s'), 0, ' s')}, "
            f"{_f(scale.median('queued'))} files queued then)"
            if held is not None
            else "still growing at the end of the bench's wait"
        )
        rows.append(
            [
                f"backfill of {sizes.backfill:,} files, 20 ms per reply",
                "start of `run` -> first upload verified; RSS growth (summed, peak vs. an empty outbox)",
                f"{_f(first, 2, ' s')}; +{_f(_mb(growth), 0, ' MB')} to {_f(after, 0, ' s')} after it; {holding}",
                f"empty outbox: peak {_f(_mb(scale.median('idle_rss_mib')), 0, ' MB')}",
                "",
                "<= 3 s; growth <= 100 MB",
                _met(
                    None
                    if first is None or growth is None or held is None
                    else first <= 3 and max(growth, held) * MIB <= 100
                ),
            ]
        )
        notes.append(
            f"Backfill: each run is stopped (SIGTERM) once its memory has not grown for 3 s, with "
            f"{_f(scale.median('delivered'))} files delivered by then (median); the stop took "
            f"{_f(scale.median('stop_s'), 1, ' s')}. Growth by summed VmHWM (each process's own peak, an upper "
            f"bound) then: +{_f(_mb(scale.median('hwm_growth_mib')), 0, ' MB')}."
        )
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per workload (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the bench out (no doc written)")
    parser.add_argument("--only", default="", help="comma-separated: small,delayed,large,backlog,live,idle,backfill")
    parser.add_argument("--out", default="docs/benchmarks.md", help="where to write the table ('' for nowhere)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    started = time.monotonic()
    rows, notes = collect(sizes, args.runs, {name for name in args.only.split(",") if name})
    block = report.generated(rows, runs=args.runs, seconds=time.monotonic() - started, notes=notes)
    print(block)
    if args.out and not args.quick and not args.only:
        report.write(Path(args.out), block)
        print(f"written to {args.out}", file=sys.stderr)
    return 0
