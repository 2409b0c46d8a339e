"""The remote-path model: where a file from the outbox lands on the server.

`<remote_root>/<station>/<date>/<sensor>/<name>`, computed from the local path alone (plus the
file's modification time, only when neither the name nor the folders carry a date). Pure.

The station folder is always the configured station (`station_folder`): the original made "a
remote directory for the current Raspberry Pi", and a name's `<station>@` prefix that differs
(a typo, a renamed Pi, a copied file) must not scatter a Pi's data over folders of their own.

The day-file rule (a bare `X.csv` grows, `X.csv.final` is delivered as `X.csv`) lives in
`operators.file_rules`; every rule on a name's extension ignores case.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import PurePosixPath

from operators.file_rules import bare_csv_of, is_daily_csv, is_final

#: `<station>@<YYYY-MM-DD>[@HH-MM-SS].<ext>`: the station is the first `@` field.
STATION_DATE_NAME = re.compile(r"^(?P<station>[^@]+)@(?P<date>\d{4}-\d{2}-\d{2})(?=[@.]|$)")
#: The date folder of a file whose name, folders and modification time give no usable date.
UNDATED = "undated"
DATE_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SENSOR_BY_EXTENSION = {".wav": "audio", ".h264": "video", ".mp4": "video", ".csv": "temp"}
#: Control characters, path separators and the NUL byte never reach the server; nor do bytes that
#: are not UTF-8 (`os.fsdecode` makes them lone surrogates, which ftplib cannot even send).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\\ud800-\udfff]")


def safe_segment(segment: str) -> str:
    """One remote path segment: unsafe characters become `_`; `.`, `..` and empty become `_`.

    Replacing (rather than rejecting) keeps the file flowing; the mapping stays readable and a
    name that was safe is unchanged.
    """
    cleaned = _UNSAFE.sub("_", segment)
    if cleaned in ("", ".", ".."):
        return "_"
    return cleaned


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def _is_date(text: str) -> bool:
    """Whether `text` (`YYYY-MM-DD` by its pattern) is a real date; a station's files share a few days."""
    return _parse_date(text) is not None


def remote_name(local_name: str, *, day_file: bool = False) -> str | None:
    """The name on the server: `X.csv.final` -> `X.csv`; a bare `.csv` -> None (still growing).

    `day_file`: a bare `.csv` delivered as its day's file (no `.final` came, or a shorter one) keeps
    its own name, the one its `.final` would have given it.
    """
    if is_final(local_name):
        return bare_csv_of(local_name)
    if is_daily_csv(local_name):
        return local_name if day_file else None
    return local_name


def sensor_of(parts: Sequence[str], name: str) -> str:
    """The first folder of the relative path, else by extension, else `misc`."""
    if len(parts) > 1:
        return parts[0]
    return SENSOR_BY_EXTENSION.get(_suffix(name).lower(), "misc")


def _suffix(name: str) -> str:
    """`PurePosixPath(name).suffix` of a single segment, without building a path: `.wav`; none for `.wav` or `x.`."""
    dot = name.rfind(".")
    return name[dot:] if 0 < dot < len(name) - 1 else ""


def date_of(parts: Sequence[str], name: str, mtime: float) -> str:
    """The name's date field, else a `YYYY-MM-DD` folder, else the modification date (local time).

    A modification time the platform cannot convert (year 14645 on a tmpfs, past 2038 on a 32-bit
    Pi) gives `undated` rather than an exception that would stop the stream.
    """
    match = STATION_DATE_NAME.match(name)
    if match and _is_date(match["date"]):
        return match["date"]
    for folder in parts[:-1]:
        if DATE_FOLDER.match(folder) and _is_date(folder):
            return folder
    try:
        return datetime.fromtimestamp(mtime).date().isoformat()
    except (OverflowError, OSError, ValueError):  # a clock gone wrong: the file still flows
        return UNDATED


def station_in_name(name: str) -> str | None:
    """The `<station>` of a name that follows `<station>@<YYYY-MM-DD>...`, else None."""
    match = STATION_DATE_NAME.match(name)
    if match and _is_date(match["date"]):
        return match["station"]
    return None


def station_folder(name: str, station: str) -> str:
    """The station folder of a file: always the configured `station`, whatever its name's prefix says.

    The one home of the rule (see the module docstring); `pipeline.stream.jobs` warns once per
    prefix that differs.
    """
    return station


def remote_path_for(
    relative: str, *, remote_root: str, station: str, mtime: float, day_file: bool = False
) -> str | None:
    """The remote path for `relative` (a path inside the outbox, `/`-separated), or None if not yet uploadable.

    The result always lies under `remote_root`: every segment is passed through `safe_segment`.
    `day_file` maps a bare `.csv` to its day's name (see `remote_name`).
    """
    return remote_path_of_parts(
        _relative_parts(relative), remote_root=remote_root, station=station, mtime=mtime, day_file=day_file
    )


def _relative_parts(relative: str) -> tuple[str, ...]:
    """The segments of `relative` as `PurePosixPath(relative).parts` gives them, less the root.

    Split as a string when that gives the same (no empty and no `.` segment: the usual case, once
    per file); else parsed by `pathlib`, which drops those (and keeps a leading `//` as a segment).
    """
    parts = relative.split("/")
    if "" in parts or "." in parts:
        return tuple(p for p in PurePosixPath(relative).parts if p not in ("", "/"))
    return tuple(parts)


def remote_path_of_parts(
    parts: Sequence[str], *, remote_root: str, station: str, mtime: float, day_file: bool = False
) -> str | None:
    """`remote_path_for` of a path already split into its segments below the outbox, as `PurePosixPath` splits
    it (no empty or `.` segment): `job_for` has them from `parts_below`, and need not join them to be split again."""
    if not parts:
        return None
    local_name = parts[-1]
    name = remote_name(local_name, day_file=day_file)
    if name is None:
        return None
    segments = (
        _safe_folder(station_folder(local_name, station)),
        _safe_folder(date_of(parts, local_name, mtime)),
        _safe_folder(sensor_of(parts, name)),
        safe_segment(name),
    )
    root = _remote_folder(remote_root)
    return root + "/".join(segments) if root == "/" else root + "/" + "/".join(segments)


@lru_cache(maxsize=64)
def _remote_folder(remote_root: str) -> str:
    """The normalized absolute `remote_root` (`/` when empty): computed once per setting, not per file."""
    stripped = remote_root.strip("/")
    return posixpath.normpath("/" + stripped) if stripped else "/"


#: `safe_segment` of the folders (station, date, sensor), which repeat from file to file; names do not.
_safe_folder = lru_cache(maxsize=1024)(safe_segment)
