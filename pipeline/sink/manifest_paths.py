"""Where a day's manifest lives: the day folder of a remote path, and the manifest's path in it."""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterable

MANIFEST_NAME = "SHA256SUMS"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def day_of(remote_path: str) -> tuple[str, str] | None:
    """(day folder, `<sensor>/<name>`) of a remote path laid out as `.../<date>/<sensor>/<name>`, else None.

    Asked at least twice per delivered file, each time of a new path: what makes the answer is the path's
    folder (`_day_and_sensor`, cached: a few folders hold the thousands of files), and the name only needs
    to be there.
    """
    cut = remote_path.rfind("/") + 1
    name = remote_path[cut:]
    found = _day_and_sensor(remote_path[:cut]) if name else None
    return None if found is None else (found[0], f"{found[1]}/{name}")


def days_of(remote_paths: Iterable[str]) -> set[str]:
    """The day folders `day_of` finds in `remote_paths`, each of their folders asked once (the board's thousands
    of jobs, once a second: `Manifests.flush`)."""
    folders = {path[: path.rfind("/") + 1] for path in remote_paths if path[-1:] not in ("", "/")}
    return {found[0] for folder in folders if (found := _day_and_sensor(folder)) is not None}


@functools.lru_cache(maxsize=1024)
def _day_and_sensor(folder: str) -> tuple[str, str] | None:
    """(day folder, sensor) of `folder` (a remote path up to its last slash) when it is `.../<date>/<sensor>/`."""
    sensor_folder = posixpath.split(folder + "-")[0]  # (`posixpath.split`'s head: trailing slashes dropped)
    day, sensor = posixpath.split(sensor_folder)
    if not sensor or not _DATE.match(posixpath.basename(day)):
        return None
    return day, sensor


def manifest_path(day: str) -> str:
    return posixpath.join(day, MANIFEST_NAME)
