"""The latency and scale rows of the table: a fresh file behind a backlog, live files, an idle outbox, memory, backfill."""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

from tests.benchmarks import latency, scale
from tests.benchmarks.rows import Bench
from tests.benchmarks.series import MIB, Series, fmt, mb, met, repeat
from tests.benchmarks.workloads import MB


def backlog(bench: Bench) -> None:
    sizes = bench.sizes
    run = partial(latency.backlog, files=sizes.backlog, size=sizes.backlog_size)
    series = repeat("backlog", bench.runs, run)
    ratio = series.ratio("fresh_latency_s", "target_s")
    bench.rows.append(
        [
            f"backlog of {sizes.backlog} files of {sizes.backlog_size // MB} MB (audio, video), 20 ms per reply, "
            "one fresh file written while it drains",
            "close -> visible, fresh file",
            fmt(series.median("fresh_latency_s"), 3, " s"),
            f"backlog files still queued then: {fmt(series.median('backlog_left'))}",
            f"{fmt(ratio, 2)}x target",
            f"<= debounce 0.5 s + longest transfer ({fmt(series.median('longest_transfer_s'), 3, ' s')})",
            met(None if ratio is None else ratio <= 1),
        ]
    )


def live(bench: Bench) -> None:
    series = repeat("live files", bench.runs, partial(latency.live_latency, files=bench.sizes.live))
    p50 = series.median("p50_s")
    bench.rows.append(
        [
            f"{bench.sizes.live} files written 5 per second, loopback, debounce 0.5 s",
            "close -> visible, p50 / p95",
            f"{fmt(p50, 3)} / {fmt(series.median('p95_s'), 3)} s",
            "",
            "",
            "p50 <= 0.6 s",
            met(None if p50 is None else p50 <= 0.6),
        ]
    )


def idle(bench: Bench) -> None:
    sizes = bench.sizes
    with tempfile.TemporaryDirectory(prefix="beemon-bench-") as folder:
        series = Series(
            scale.idle_cpu(Path(folder), files=sizes.idle_files, window=sizes.idle_window, slices=bench.runs)
        )
    inotify = series.median("inotify_cpu_pct")
    bench.rows.append(
        [
            f"a {sizes.idle_files:,}-file outbox, idle for {sizes.idle_window:.0f} s (server down)",
            "CPU % of one core",
            f"inotify {fmt(inotify, 2)} %; polling {fmt(series.median('polling_cpu_pct'), 2)} %",
            f"watchdog's polling observer alone {fmt(series.median('observer_cpu_pct'), 2)} %",
            f"polling {fmt(series.ratio('polling_cpu_pct', 'observer_cpu_pct'), 2)}x the observer alone",
            "inotify <= 0.5 %; report polling",
            met(None if inotify is None else inotify <= 0.5),
        ]
    )
    bench.notes.append(
        f"Idle: the inotify uploader's busiest second of each {sizes.idle_window / bench.runs:.0f}-second window"
        f" (median) {fmt(series.median('inotify_busiest_second_ms'), 0, ' ms')} of CPU, most"
        f" {fmt(series.maximum('inotify_busiest_second_ms'), 0, ' ms')}; /proc counts in 10 ms ticks."
    )


def memory(bench: Bench) -> None:
    """Peak RSS of the first loopback small-files row's uploader (nothing when that row did not run)."""
    if bench.small is None:
        return
    idle_peak, busy_peak = bench.small.median("idle_peak_rss_mib"), bench.small.median("peak_rss_mib")
    peaks = [v for v in (idle_peak, busy_peak) if v is not None]
    bench.rows.append(
        [
            "all processes of `run`, idle and under the first workload",
            "peak RSS, summed",
            f"idle {fmt(mb(idle_peak), 0, ' MB')}; under load {fmt(mb(busy_peak), 0, ' MB')}",
            "",
            "",
            "<= 120 MB",
            met(max(peaks) * MIB <= 120 if peaks else None),
        ]
    )
    idle_pss = bench.small.median("idle_pss_mib")
    bench.rows.append(
        [
            "all processes of `run`, idle (1 s after it watches), 4 connections",
            "PSS, summed (`/proc/PID/smaps_rollup`)",
            fmt(mb(idle_pss), 1, " MB"),
            "",
            "",
            "<= 45 MB",
            met(idle_pss * MIB <= 45 if idle_pss is not None else None),
        ]
    )


def backfill(bench: Bench) -> None:
    files = bench.sizes.backfill
    with tempfile.TemporaryDirectory(prefix="beemon-bench-outbox-") as kept:
        series = repeat("backfill", bench.runs, partial(scale.backfill, files=files, outbox=Path(kept)))
    first, growth = series.median("first_upload_s"), series.median("rss_growth_mib")
    held, after = series.median("settled_growth_mib"), series.median("after_s")
    holding = (
        f"+{fmt(mb(held), 0, ' MB')} once it stops growing ({fmt(series.median('settled_s'), 0, ' s')}, "
        f"{fmt(series.median('queued'))} files queued then)"
        if held is not None
        else "still growing at the end of the bench's wait"
    )
    ok = None if first is None or growth is None or held is None else first <= 3 and max(growth, held) * MIB <= 100
    bench.rows.append(
        [
            f"backfill of {files:,} files, 20 ms per reply",
            "start of `run` -> first upload verified; RSS growth (summed, peak vs. an empty outbox)",
            f"{fmt(first, 2, ' s')}; +{fmt(mb(growth), 0, ' MB')} to {fmt(after, 0, ' s')} after it; {holding}",
            f"empty outbox: peak {fmt(mb(series.median('idle_rss_mib')), 0, ' MB')}",
            "",
            "<= 3 s; growth <= 100 MB",
            met(ok),
        ]
    )
    bench.notes.append(
        f"Backfill: each run is stopped (SIGTERM) once its memory has not grown for 3 s, with "
        f"{fmt(series.median('delivered'))} files delivered by then (median); the stop took "
        f"{fmt(series.median('stop_s'), 1, ' s')}. Growth by summed VmHWM (each process's own peak, an upper "
        f"bound) then: +{fmt(mb(series.median('hwm_growth_mib')), 0, ' MB')}."
    )
