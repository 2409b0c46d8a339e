"""The outbox's free space: a station offline for days fills its SD card, and then recordings are lost.

`DiskGuard.check` reads the file system's free space; below `watch.min_free_percent` it logs one
WARNING per crossing (and one INFO when space is back), and the metrics and status show the figures.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger("beemon.disk")


@dataclass(frozen=True, slots=True)
class FreeSpace:
    free_bytes: int
    total_bytes: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 100.0


def free_space(path: str) -> FreeSpace | None:
    """Free space for unprivileged writers (what the recorder gets), or None when the path cannot be read."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return FreeSpace(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


class DiskGuard:
    """Warns once per crossing below `min_free_percent` (0: never); `low` says where it stands now."""

    def __init__(
        self, path: str, min_free_percent: float, measure: Callable[[str], FreeSpace | None] = free_space
    ) -> None:
        self.path = path
        self.min_free_percent = min_free_percent
        self._measure = measure
        self.low = False
        self.last: FreeSpace | None = None

    def check(self) -> FreeSpace | None:
        space = self._measure(self.path)
        self.last = space
        if space is None:
            return None
        low = space.free_percent < self.min_free_percent
        if low and not self.low:
            log.warning(
                "the outbox's disk is almost full: %.1f %% free (%d MB) under %s, below watch.min_free_percent = %g;"
                " the station may soon lose recordings: check the server link and the backlog",
                space.free_percent,
                space.free_bytes // 1_000_000,
                self.path,
                self.min_free_percent,
            )
        elif self.low and not low:
            log.info("the outbox's disk has %.1f %% free again", space.free_percent)
        self.low = low
        return space
