"""`python -m tests.benchmarks`: run every workload several times, print the table, write docs/benchmarks.md."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from tests.benchmarks import report, rows, rows_more
from tests.benchmarks.baselines import lftp_available
from tests.benchmarks.rows import Bench
from tests.benchmarks.series import QUICK, Sizes
from tests.benchmarks.servers import KINDS
from tests.servers import find_server

#: Each name of `--only`, in the table's order: the row builders it runs (`servers` left to fill in).
WORKLOADS = ("small", "delayed", "once", "large", "backlog", "live", "idle", "backfill", "hash")


def _builders(name: str, servers: list[str]) -> list[Callable[[Bench], None]]:
    if name in ("small", "large"):
        return [partial(getattr(rows, name), kind=kind) for kind in servers]
    if name == "idle":
        return [rows_more.idle, rows_more.memory]
    if name == "hash":
        return [rows.hashing]
    return [getattr(rows, name, None) or getattr(rows_more, name)]


def collect(sizes: Sizes, runs: int, only: set[str], servers: list[str]) -> Bench:
    bench = Bench(sizes, runs)
    if not lftp_available():
        bench.notes.append("lftp is not installed: its baselines are n/a (`make bench` as root installs it).")
    if "vsftpd" in servers and find_server("vsftpd", "vsftpd") is None:
        servers = [kind for kind in servers if kind != "vsftpd"]
        bench.notes.append("vsftpd is not installed: its rows are left out (`make servers` as root unpacks it).")
        print("vsftpd is not installed: its rows are left out; run `make servers` as root", file=sys.stderr)
    for name in WORKLOADS:
        if only and name not in only:
            continue
        started = time.monotonic()
        for build in _builders(name, servers):
            build(bench)
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return bench


def _names(text: str, allowed: tuple[str, ...], option: str) -> list[str]:
    names = [name for name in text.split(",") if name]
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise SystemExit(f"{option}: unknown {', '.join(unknown)} (one of {', '.join(allowed)})")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="runs per workload (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the bench out (no doc written)")
    parser.add_argument("--only", default="", help=f"comma-separated: {','.join(WORKLOADS)}")
    parser.add_argument("--servers", default=",".join(KINDS), help="the loopback rows' servers: vsftpd,pyftpdlib")
    parser.add_argument("--out", default="docs/benchmarks.md", help="where to write the table ('' for nowhere)")
    args = parser.parse_args(argv)
    only = set(_names(args.only, WORKLOADS, "--only"))
    servers = _names(args.servers, KINDS, "--servers")
    started, when, load = time.monotonic(), report.stamp(), report.load_average()
    bench = collect(QUICK if args.quick else Sizes(), args.runs, only, servers)
    seconds = time.monotonic() - started
    block = report.generated(bench.rows, runs=args.runs, seconds=seconds, notes=bench.notes, started=when, load=load)
    print(block)
    if args.out and not args.quick and not args.only and servers == list(KINDS):
        report.write(Path(args.out), block)
        print(f"written to {args.out}", file=sys.stderr)
    return 0
