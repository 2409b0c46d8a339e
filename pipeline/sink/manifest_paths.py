"""Where a day's manifest lives: the day folder of a remote path, and the manifest's path in it."""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable

MANIFEST_NAME = "SHA256SUMS"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@functools.lru_cache(maxsize=4096)  # asked per delivery and for every job the board holds, once a second
def day_of(remote_path: str) -> tuple[str, str] | None:
    """(day folder, `<sensor>/<name>`) of a remote path laid out as `.../<date>/<sensor>/<name>`, else None."""
    sensor_folder, name = posixpath.split(remote_path)
    day, sensor = posixpath.split(sensor_folder)
    if not name or not sensor or not _DATE.match(posixpath.basename(day)):
        return None
    return day, f"{sensor}/{name}"


def days_of(remote_paths: Iterable[str]) -> set[str]:
    """The day folders `day_of` finds in `remote_paths`, each of their folders asked once: what a path's day is
    depends only on its folder (a name of its own, not empty, is all it needs), and the board's thousands of jobs
    sit in a few folders (asked once a second for all of them, `Manifests.flush`; a per-path `day_of` outgrew
    its cache with a long backlog)."""
    folders = {path[: path.rfind("/") + 1] for path in remote_paths if path[-1:] not in ("", "/")}
    return {found[0] for folder in folders if (found := day_of(folder + "-")) is not None}


def manifest_path(day: str) -> str:
    return posixpath.join(day, MANIFEST_NAME)
