"""`run --once` on an empty outbox: its wall time, and what its imports cost (issue 17, run by hand).

    python -m tests.benchmarks.startup [--runs 9] [--top 15] [--command /other/venv/bin/beemon-uploader]

Production settings aimed at a loopback bench server (the same `Uploader` environment as the
bench), an outbox with nothing in it. Prints the load average (the machine is shared), each run's
wall time, the median, and the parent's costliest imports by `python -X importtime` (cumulative).
`--command` measures another install (a production one: `pip install .` in a fresh venv, without
the dev venv's Sphinx and its jinja2, which dynaconf imports when it finds it). Bytecode is
written and a first run warms it up, as on a station whose install compiled it.
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

from tests.benchmarks.harness import Uploader, ftp_server, uploader_command

#: `import time:  self |  cumulative | <indent>name`, in microseconds.
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _env(uploader: Uploader) -> dict[str, str]:
    env = uploader.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a station's install has its bytecode
    return env


def _read_all(stream: IO[str], into: list[tuple[str, float]]) -> None:
    """Read `stream` to its end; append what it said and when it closed."""
    into.append((stream.read(), time.perf_counter()))


def once_walls(uploader: Uploader, command: list[str], runs: int) -> list[tuple[float, float]]:
    """(returned, output closed) seconds of each `run --once`, after a first run that is not counted.

    "Returned" is when the command exited (what `time` in a shell shows); "output closed" is when
    the last process holding its output let go (what cron, reading the output, waits for): a
    process it left behind, such as multiprocessing's resource tracker, shows there. Raises if a run fails.
    """
    walls = []
    for _ in range(runs + 1):
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
        code = process.wait()
        returned = time.perf_counter()
        reader.join()
        text, closed = output[0]
        walls.append((returned - started, closed - started))
        if code != 0 or "0 files to deliver" not in text:
            raise RuntimeError(f"run --once failed ({code}):\n{text[-3000:]}")
    return walls[1:]


def import_profile(uploader: Uploader, python: str, top: int) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of the parent's `top` costliest imports during one `run --once`.

    Children inherit `-X importtime` and write to the same stderr: the parent's lines are those
    before a top-level module shows up a second time (a child starting), so the few modules the
    parent imports after its first child started (ctypes for the sink's counters) are left out.
    """
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "pipeline.cli", "run", "--once"],
        env=_env(uploader),
        cwd=uploader.work,
        capture_output=True,
        text=True,
        check=False,
    )
    rows: list[tuple[int, int, str]] = []
    top_level: set[str] = set()
    for line in done.stderr.splitlines():
        if not (match := IMPORT_LINE.match(line)):
            continue
        depth, name = len(match[3]) // 2, match[4]
        if depth == 0 and name in top_level:
            break
        top_level.update([name] if depth == 0 else [])
        rows.append((int(match[2]), depth, name))
    return sorted(rows, reverse=True)[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--command", help="the beemon-uploader script to measure (default: this venv's)")
    args = parser.parse_args(argv)
    command = [args.command] if args.command else uploader_command()
    python = str(Path(args.command).with_name("python")) if args.command else sys.executable
    with tempfile.TemporaryDirectory(prefix="startup-") as folder:
        work = Path(folder)
        with ftp_server(work) as server:
            uploader = Uploader(work, work / "outbox", server.port, server.password)
            uploader.outbox.mkdir()
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            walls = once_walls(uploader, command, args.runs)
            print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for label, column in (("returned", 0), ("output closed", 1)):
                values = [wall[column] for wall in walls]
                print(
                    f"{label}: median {statistics.median(values):.3f} s, min {min(values):.3f} s,"
                    f" max {max(values):.3f} s ({' '.join(f'{v:.3f}' for v in values)})"
                )
            print("top imports of the parent (cumulative):")
            for cumulative, depth, name in import_profile(uploader, python, args.top):
                print(f"  {cumulative / 1000:7.1f} ms  {'  ' * depth}{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
