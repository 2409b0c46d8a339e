"""Which files may ever be uploaded, and which events mean "this file is finished": the pure rules.

The stream's operators (`operators.ready_files`) apply them to events; the scans (the backfill,
`run --once`, `--dry-run`) call them directly, and so load no stream library. A file is wanted
when no segment of its path below the outbox is an ignored name and its name maps to a remote
name. The kinds that mean finished: CLOSED, MOVED (in), FOUND and DAY_FILE (backfill) and
CREATED (inotify reports a file moved in from outside the watch, or written into a new folder
before its watch existed, as Created only); with the polling observer also MODIFIED, which never
sees Closed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Sequence
from fnmatch import translate
from functools import lru_cache

from operators.model import EventKind, FileEvent
from operators.remote_path import remote_name

READY_KINDS = frozenset({EventKind.CLOSED, EventKind.MOVED, EventKind.FOUND, EventKind.CREATED, EventKind.DAY_FILE})
POLLING_READY_KINDS = READY_KINDS | {EventKind.MODIFIED}


def is_ignored_name(name: str, patterns: Iterable[str]) -> bool:
    """True if one path segment matches one of the patterns (fnmatch ignoring case: `X.PART` is a `*.part`)."""
    return _matcher(patterns if isinstance(patterns, tuple) else tuple(patterns))(name.lower()) is not None


@lru_cache(maxsize=16)
def _matcher(patterns: tuple[str, ...]) -> Callable[[str], re.Match[str] | None]:
    """One regular expression for all the patterns, lower-cased (every event's path is checked segment by segment)."""
    if not patterns:
        return lambda name: None
    return re.compile("|".join(translate(pattern.lower()) for pattern in patterns)).match


def parts_below(path: str, root: str) -> tuple[str, ...] | None:
    """The segments of `path` below `root`, or None if it does not lie below it."""
    prefix = _absolute_prefix(root)
    if prefix is not None and path.startswith(prefix):  # the common case, without relpath's cost
        parts = tuple(path[len(prefix) :].split(os.sep))
        if "" not in parts and os.curdir not in parts and os.pardir not in parts:
            return parts
    try:
        relative = os.path.relpath(path, root)
    except ValueError:  # an empty path: below nothing (raising would end the whole stream)
        return None
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep):
        return None
    return tuple(relative.split(os.sep))


@lru_cache(maxsize=16)
def _absolute_prefix(root: str) -> str | None:
    """`root` ending in a separator, when it is absolute (else None): asked twice per file of a root that never
    changes, `os.path.isabs` alone is four Python calls."""
    if not os.path.isabs(root):
        return None
    return root if root.endswith(os.sep) else root + os.sep


def relative_parts(path: str, root: str = "") -> tuple[str, ...]:
    """The segments of `path` below `root`; only the name when there is no root or the path is outside it."""
    parts = parts_below(path, root) if root else None
    return parts or (os.path.basename(path),)


def is_wanted(path: str, patterns: Sequence[str], root: str = "", *, day_file: bool = False) -> bool:
    """True if the file may ever be uploaded: no segment below `root` is ignored and the name maps to a remote name.

    Checking the folders too keeps `.Trash-1000/`, `.git/` and other hidden trees out. `day_file`:
    a bare `.csv` counts (the backfill delivers a past day's one whose `.final` never came).
    """
    return _wanted(path, _matcher(patterns if isinstance(patterns, tuple) else tuple(patterns)), root, day_file)


def wanted_rule(patterns: Sequence[str], root: str = "") -> Callable[[str, bool], bool]:
    """`is_wanted` for one set of patterns and one root, as `wanted(path, day_file)`, compiled once (the stream
    asks it for every event)."""
    ignored = _matcher(tuple(patterns))

    def wanted(path: str, day_file: bool) -> bool:
        return _wanted(path, ignored, root, day_file)

    return wanted


def _wanted(path: str, ignored: Callable[[str], re.Match[str] | None], root: str, day_file: bool) -> bool:
    parts = relative_parts(path, root)
    if not parts or remote_name(parts[-1], day_file=day_file) is None:
        return False
    for part in parts:  # noqa: SIM110 (a loop: no generator per event)
        if ignored(part.lower()) is not None:
            return False
    return True


def ready_rule(
    patterns: Sequence[str] = (), root: str = "", *, polling: bool = False, watched: bool = False
) -> Callable[[FileEvent], bool]:
    """`is_ready` for one set of patterns, one root and one observer kind, compiled once (see `wanted_rule`).

    `watched`: every event passed `watched_files` with the same patterns and root (`wanted_rule`'s
    `wanted(path, False)` said yes, and it is no directory), so that, but for a day file (wanted by
    another rule), only its kind is left to check: the same answer without a second pass over its path.
    """
    kinds = POLLING_READY_KINDS if polling else READY_KINDS
    ignored = _matcher(tuple(patterns))

    def ready(event: FileEvent) -> bool:
        return (
            event.kind in kinds
            and not event.is_directory
            and _wanted(event.path, ignored, root, event.kind is EventKind.DAY_FILE)
        )

    def ready_watched(event: FileEvent) -> bool:
        kind = event.kind
        return kind in kinds and (kind is not EventKind.DAY_FILE or ready(event))

    return ready_watched if watched else ready


def is_ready(event: FileEvent, patterns: Sequence[str] = (), root: str = "", *, polling: bool = False) -> bool:
    """True if `event` (a path's last event of a quiet period) means the file is finished and wanted."""
    kinds = POLLING_READY_KINDS if polling else READY_KINDS
    day_file = event.kind is EventKind.DAY_FILE
    return event.kind in kinds and not event.is_directory and is_wanted(event.path, patterns, root, day_file=day_file)
