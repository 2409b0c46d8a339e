"""What the bench's rows are made of: the sizes, the figures of repeated runs, and their formatting."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.benchmarks.workloads import MB, Figures

MIB = 1.048576  # MB per MiB: /proc reports KiB, the targets are in MB


@dataclass(frozen=True)
class Sizes:
    """The issues' sizes (`full`) and a quick set to try the bench out in a few minutes."""

    small: int = 2000
    small_delayed: int = 500
    per_login_delayed: int = 170  # per run; see the note of the delayed row
    once: int = 200
    per_login_once: int = 60  # the same: the loop's rate does not depend on the count
    large: int = 10
    large_size: int = 50 * MB
    backlog: int = 40
    backlog_size: int = 8 * MB
    live: int = 200
    idle_files: int = 9000
    idle_window: float = 60.0
    backfill: int = 100_000
    hash_gib: float = 1.0
    hash_files: int = 200


QUICK = Sizes(200, 60, 20, 40, 10, 3, 5 * MB, 8, 1 * MB, 20, 900, 5.0, 5000, 0.1, 40)


@dataclass
class Series:
    """The figures of every run of one workload."""

    runs: list[Figures] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if run.get(key) is not None]
        return statistics.median(values) if values else None  # type: ignore[type-var]

    def maximum(self, key: str) -> float | None:
        values = [run[key] for run in self.runs if run.get(key) is not None]
        return max(values) if values else None  # type: ignore[type-var]

    def ratio(self, top: str, bottom: str) -> float | None:
        values = [run[top] / run[bottom] for run in self.runs if run.get(top) and run.get(bottom)]  # type: ignore[operator]
        return statistics.median(values) if values else None


def repeat(label: str, runs: int, action: Callable[[Path], Figures]) -> Series:
    """`action` `runs` times, each in a fresh temporary folder; says how long each took on stderr."""
    series = Series()
    for index in range(runs):
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="beemon-bench-") as folder:
            series.runs.append(action(Path(folder)))
        print(f"  {label} run {index + 1}/{runs}: {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
    return series


def mb(mib: float | None) -> float | None:
    return None if mib is None else mib * MIB


def fmt(value: float | None, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:,.{digits}f}{unit}"


def met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("yes" if ok else "**no**")


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target
