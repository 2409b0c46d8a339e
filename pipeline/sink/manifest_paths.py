"""Where a day's manifest lives: the day folder of a remote path, and the manifest's path in it."""

from __future__ import annotations

import functools
import posixpath
import re

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


def manifest_path(day: str) -> str:
    return posixpath.join(day, MANIFEST_NAME)
