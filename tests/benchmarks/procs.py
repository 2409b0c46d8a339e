"""CPU time and memory of a process tree, read from /proc (no psutil): what the uploader's processes cost.

CPU is user + system time in clock ticks (10 ms on Linux), summed over the live tree, plus the
children each of them already reaped (`cutime`/`cstime`), so a sink that exits inside a window
is still counted. Memory is VmRSS (now) or VmHWM (each process's peak since it started).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

TICK = 1.0 / os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2 :].split()


def descendants(root: int) -> list[int]:
    """`root` and every live process below it."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU seconds of the tree under `root`, reaped children included."""
    total = 0
    for pid in descendants(root):
        fields = _stat_fields(pid)
        if fields is not None:  # fields[11:15]: utime, stime, cutime, cstime
            total += sum(int(value) for value in fields[11:15])
    return total * TICK


def proc_kib(pid: int, key: str, table: str = "status") -> int:
    """One kB figure of /proc/PID/`table` (`status`, `smaps_rollup`) by its key, 0 when the process is gone."""
    try:
        with open(f"/proc/{pid}/{table}") as file:
            for line in file:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mib(root: int) -> float:
    """Resident memory of the whole tree now, MiB."""
    return sum(proc_kib(pid, "VmRSS:") for pid in descendants(root)) / 1024


def peak_rss_mib(root: int) -> float:
    """The sum of each live process's peak resident memory (VmHWM), MiB: an upper bound of the tree's peak."""
    return sum(proc_kib(pid, "VmHWM:") for pid in descendants(root)) / 1024


@dataclass
class RssSampler:
    """Samples the tree's summed RSS every `interval` s in a thread; `peak` is the highest sum seen.

    `rose_at` is the last time (monotonic) the peak rose by more than `step` MiB over its level at
    the rise before: memory that stopped growing shows as a `rose_at` left behind.
    """

    root: int
    interval: float = 0.1
    step: float = 1.0
    peak: float = 0.0
    rose_at: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._mark = 0.0

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            rss = rss_mib(self.root)
            if rss > self._mark + self.step:
                self._mark, self.rose_at = rss, time.monotonic()
            self.peak = max(self.peak, rss)
            if self._stop.wait(self.interval):
                return

    def settled(self, quiet: float, timeout: float) -> bool:
        """Block until the peak has not risen (by more than `step`) for `quiet` s; False after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.rose_at < quiet:
            if time.monotonic() > deadline:
                return False
            time.sleep(self.interval)
        return True
