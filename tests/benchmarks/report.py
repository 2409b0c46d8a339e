"""The machine's description, the table, and docs/benchmarks.md (generated part between markers)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

BEGIN = "<!-- bench:begin (written by `make bench`; edit outside these markers) -->"
END = "<!-- bench:end -->"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        with open("/proc/meminfo") as file:
            for line in file:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _lftp_version() -> str:
    if shutil.which("lftp") is None:
        return "not installed (its rows are skipped)"
    out = subprocess.run(["lftp", "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"Version ([0-9.]+)", out)
    return match.group(1) if match else "installed"


def machine() -> str:
    return (
        f"{_cpu_model()}, {os.cpu_count()} cores, {_memory_gib():.1f} GiB memory, "
        f"Python {platform.python_version()}, Linux {platform.release()}, lftp {_lftp_version()}"
    )


def load_average() -> str:
    """The 1-minute load average now: the other work on the machine, which the figures share it with."""
    return f"{os.getloadavg()[0]:.1f}"


def stamp() -> str:
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


HEADER = ["workload", "measured", "beemon-uploader", "baselines (same run)", "ratio", "target", "met"]


def table(rows: list[list[str]], header: list[str] = HEADER) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _storage() -> str:
    from tests.benchmarks.servers import MEMORY, memory_storage

    if memory_storage():
        return f"The servers keep what they receive in memory ({MEMORY}, a tmpfs)."
    return "The servers keep what they receive on the work folder's disk."


def generated(
    rows: list[list[str]], *, runs: int, seconds: float, notes: list[str], started: str = "", load: str = ""
) -> str:
    """The block between BEGIN and END: when, where, how loaded, the table and its notes."""
    loaded = f" Load average (1 min) {load} at the start, {load_average()} at the end." if load else ""
    parts = [
        BEGIN,
        "",
        f"Run on {started or stamp()}: {machine()}.",
        f"Each figure is the median of {runs} runs; each ratio is taken within a run, then the median. "
        f"The whole bench took {seconds / 60:.1f} minutes.{loaded} {_storage()}",
        "",
        table(rows),
        "",
    ]
    if notes:
        parts += [*(f"- {note}" for note in notes), ""]
    parts.append(END)
    return "\n".join(parts)


SKELETON = """# Benchmarks

`make bench` runs `tests/benchmarks/` and rewrites the table below.

{generated}
"""


def write(path: Path, block: str, begin: str = BEGIN, end: str = END) -> None:
    """Replace the block of `path` between `begin` and `end` (which `block` holds too); a skeleton, or the block
    appended, when the page or its markers are missing."""
    text = path.read_text() if path.exists() else ""
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    elif text:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = SKELETON.format(generated=block)
    path.write_text(text)
