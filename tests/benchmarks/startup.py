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
import time
from pathlib import Path

from tests.benchmarks.harness import Uploader, ftp_server, uploader_command

#: `import time:  self |  cumulative | <indent>name`, in microseconds.
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _env(uploader: Uploader) -> dict[str, str]:
    env = uploader.env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # a station's install has its bytecode
    return env


def once_walls(uploader: Uploader, command: list[str], runs: int) -> list[float]:
    """Seconds of wall time of each `run --once` after a first one that is not counted; raises if one fails."""
    walls = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(
            [*command, "run", "--once"],
            env=_env(uploader),
            cwd=uploader.work,
            capture_output=True,
            text=True,
            check=False,
        )
        walls.append(time.perf_counter() - started)
        if done.returncode != 0 or "0 files to deliver" not in done.stderr:
            raise RuntimeError(f"run --once failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return walls[1:]


def import_profile(uploader: Uploader, python: str, top: int) -> list[tuple[int, int, str]]:
    """(cumulative µs, depth, module) of the parent's `top` costliest imports during one `run --once`."""
    done = subprocess.run(
        [python, "-X", "importtime", "-m", "pipeline.cli", "run", "--once"],
        env=_env(uploader),
        cwd=uploader.work,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in done.stderr.splitlines():
        if match := IMPORT_LINE.match(line):
            rows.append((int(match[2]), len(match[3]) // 2, match[4]))
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
            print("walls (s):", " ".join(f"{wall:.3f}" for wall in walls))
            print(f"median {statistics.median(walls):.3f} s, min {min(walls):.3f} s, max {max(walls):.3f} s")
            print("top imports of the parent (cumulative):")
            for cumulative, depth, name in import_profile(uploader, python, args.top):
                print(f"  {cumulative / 1000:7.1f} ms  {'  ' * depth}{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
