"""The outbox's deletion rules: what may be removed after a verified upload, and when.

The file system is the durable queue, so a local file is removed only once the server holds a
verified copy of exactly the bytes it has now. A bare `.csv` is still being appended to by its
sensor and is never removed; `X.csv.final` is the day's last state of `X.csv`, so removing it
removes `X.csv` too (the original uploader's `remove_local_file`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from pipeline.file_state import FileState, file_state, held_for_reading

log = logging.getLogger("beemon.sink.files")

FINAL_SUFFIX = ".csv.final"


def file_version(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a local file, or None when it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(frozen=True, slots=True)
class Removal:
    """What `remove_uploaded` did: the paths removed, and why the uploaded file itself was kept."""

    removed: list[str] = field(default_factory=list)
    #: why the file was kept ("" when it was removed, is gone, or is a bare `.csv`)
    kept: str = ""
    #: the file is no longer the version that was uploaded: upload it again
    changed: bool = False


def remove_local_file(filepath: str) -> list[str]:
    """Remove an uploaded file by the outbox's rules; returns the paths actually removed.

    The original API: `remove_uploaded` without a version to compare, so only a file some process
    has open for writing is kept.
    """
    return remove_uploaded(filepath).removed


def remove_uploaded(filepath: str, version: FileState | None = None) -> Removal:
    """Remove an uploaded file by the outbox's rules, if it is still `version` (when given).

    A bare `.csv` is kept; `X.csv.final` takes `X.csv` with it, and `X.csv` goes first: a crash
    between the two removals then leaves `X.csv.final` (uploaded again at the next start, then
    removed with nothing left), never a bare `X.csv` of a finished day that nothing would ever
    upload or remove. A file already gone is not an error.

    The check and the removal happen under a read lease (`held_for_reading`): a file open for
    writing is kept, and no writer can open it between the comparison and the removal.
    """
    if filepath.endswith(".csv"):
        return Removal()
    try:
        with held_for_reading(filepath) as held:
            if held is None:
                return Removal(kept="it is open for writing")
            current = FileState.of(held.stat)
            if file_state(filepath) != current or (version is not None and current != version):
                return Removal(kept="it changed after it was uploaded", changed=True)
            return Removal(_remove_with_companion(filepath))
    except FileNotFoundError:
        return Removal()
    except OSError:  # cannot be opened (a symlink, no read permission): compare by name only
        if version is not None and file_state(filepath) not in (version, None):
            return Removal(kept="it changed after it was uploaded", changed=True)
        return Removal(_remove_with_companion(filepath))


def _remove_with_companion(filepath: str) -> list[str]:
    targets = [filepath]
    if filepath.endswith(FINAL_SUFFIX):
        targets.insert(0, filepath[: -len(".final")])
    removed = []
    for target in targets:
        try:
            os.remove(target)
        except FileNotFoundError:
            continue
        except OSError as error:
            log.warning("could not remove %s: %s", target, error.strerror or error)
            continue
        removed.append(target)
    return removed
