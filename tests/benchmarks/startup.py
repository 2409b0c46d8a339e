"""`run --once` on an empty outbox: its wall time, and what its imports cost (issue 17, run by hand).

    python -m tests.benchmarks.startup [--runs 9] [--top 15] [--command /a/venv/bin/beemon-uploader ...]

Production settings aimed at a loopback bench server (the same `Uploader` environment as the
bench), an outbox with nothing in it. Prints the load average (the machine is shared), each run's
wall time and the medians, and each command's costliest imports by `python -X importtime`.
`--command` (repeatable) measures other installs, such as production ones (`pip install .` in a
fresh venv, without the dev venv's Sphinx and its jinja2, which dynaconf imports when it finds
it) of this tree and of a baseline: the commands take turns, run by run, so that each sees the
same load. Bytecode is written and a first run of each warms it up, as on a station whose install
compiled it.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

from tests.benchmarks.harness import Uploader, uploader_command
from tests.benchmarks.servers import ftp_server
from tests.benchmarks.servers import uploader as bench_uploader

#: `import time:  self |  cumulative | <indent>name`, in microseconds.
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _env(uploader: Uploader) -> dict[str, str]:
    env = uploader.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a station's install has its bytecode
    return env


def _read_all(stream: IO[str], into: list[tuple[str, float]]) -> None:
    """Read `stream` to its end; append what it said and when it closed."""
    into.append((stream.read(), time.perf_counter()))


def once_wall(uploader: Uploader, command: list[str]) -> tuple[float, float, float]:
    """(returned, output closed, CPU) seconds of one `run --once`; raises if it fails.

    "Returned" is when the command exited (what `time` in a shell shows); "output closed" is when
    the last process holding its output let go (what cron, reading the output, waits for): a
    process it left behind, such as multiprocessing's resource tracker, shows there. CPU is the
    user and system time of the command and the children it waited for (the sink): on a shared
    machine it moves less with the load than the wall times do.
    """
    output: list[tuple[str, float]] = []
    started = time.perf_counter()
    process = subprocess.Popen(
        [*command, "run", "--once"],
        env=_env(uploader),
        cwd=uploader.work,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    reader = threading.Thread(target=_read_all, args=(process.stdout, output))
    reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    returned = time.perf_counter()
    code = process.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    text, closed = output[0]
    if code != 0 or "0 files to deliver" not in text:
        raise RuntimeError(f"run --once failed ({code}):\n{text[-3000:]}")
    return returned - started, closed - started, usage.ru_utime + usage.ru_stime


def import_profile(uploader: Uploader, python: str, top: int, runs: int = 5) -> list[tuple[float, int, str]]:
    """(cumulative µs, depth, module) of the parent's `top` costliest imports in `runs` runs of `run --once` (medians).

    Children inherit `-X importtime` and write to the same stderr: the parent's lines are those
    before a top-level module shows up a second time (a child starting), so the few modules the
    parent imports after its first child started (ctypes for the sink's counters) are left out.
    """
    seen: dict[tuple[int, str], list[int]] = {}
    for _ in range(runs):
        done = subprocess.run(
            [python, "-X", "importtime", "-m", "pipeline.cli", "run", "--once"],
            env=_env(uploader),
            cwd=uploader.work,
            capture_output=True,
            text=True,
            check=False,
        )
        top_level: set[str] = set()
        for line in done.stderr.splitlines():
            if not (match := IMPORT_LINE.match(line)):
                continue
            depth, name = len(match[3]) // 2, match[4]
            if depth == 0 and name in top_level:
                break
            top_level.update([name] if depth == 0 else [])
            seen.setdefault((depth, name), []).append(int(match[2]))
    rows = [(statistics.median(times), depth, name) for (depth, name), times in seen.items()]
    return sorted(rows, reverse=True)[:top]


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _summary(label: str, values: list[float]) -> str:
    shown = " ".join(f"{v:.3f}" for v in values)
    return (
        f"  {label}: median {statistics.median(values):.3f} s, min {min(values):.3f}, max {max(values):.3f} ({shown})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--top", type=int, default=15, help="imports listed per command (0: no profile)")
    parser.add_argument("--command", action="append", help="a beemon-uploader script (default: this venv's)")
    args = parser.parse_args(argv)
    commands = [[path] for path in args.command] if args.command else [uploader_command()]
    with tempfile.TemporaryDirectory(prefix="startup-") as folder:
        work = Path(folder)
        with ftp_server(work) as server:
            uploader = bench_uploader(work, work / "outbox", server)
            uploader.outbox.mkdir()
            print(f"load average before: {_load()}")
            for command in commands:
                once_wall(uploader, command)  # writes and warms the bytecode
            walls: list[list[tuple[float, float, float]]] = [[] for _ in commands]
            for _ in range(args.runs):
                for command, into in zip(commands, walls, strict=True):
                    into.append(once_wall(uploader, command))
            print(f"load average after:  {_load()}")
            for command, measured in zip(commands, walls, strict=True):
                print(" ".join(command))
                print(_summary("returned", [wall[0] for wall in measured]))
                print(_summary("output closed", [wall[1] for wall in measured]))
                print(_summary("CPU", [wall[2] for wall in measured]))
                if args.top > 0:
                    print("  costliest imports of the parent (cumulative, median of 5 runs):")
                    python = str(Path(command[-1]).with_name("python"))
                    for cumulative, depth, name in import_profile(uploader, python, args.top):
                        print(f"    {cumulative / 1000:7.1f} ms  {'  ' * depth}{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
