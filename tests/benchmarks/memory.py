"""Proportional memory (PSS) of a process tree, read from `/proc/PID/smaps_rollup`.

RSS counts every shared page once per process that maps it; PSS divides each page between the
processes that share it, so the sum over the tree is what the tree costs the machine.
"""

from __future__ import annotations

from tests.benchmarks.procs import _stat_fields, descendants, proc_kib


def command_of(pid: int) -> str:
    """The process's command line, shortened: what each row of the memory table is."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            words = file.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(word.decode(errors="replace") for word in words if word)
    if "resource_tracker" in text:
        return "resource tracker"
    if "multiprocessing.spawn" in text or "spawn_main" in text:
        return "sink"
    return "run (parent)"


def tree_memory(root: int) -> list[tuple[int, str, float, float]]:
    """(pid, role, PSS MiB, RSS MiB) of `root` and every live process below it."""
    rows = []
    for pid in descendants(root):
        if _stat_fields(pid) is None:
            continue
        rows.append(
            (
                pid,
                command_of(pid),
                proc_kib(pid, "Pss:", "smaps_rollup") / 1024,
                proc_kib(pid, "Rss:", "smaps_rollup") / 1024,
            )
        )
    return rows


def pss_mib(root: int) -> float:
    """The summed PSS of the tree under `root`, MiB."""
    return sum(row[2] for row in tree_memory(root))
