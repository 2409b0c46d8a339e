"""The outbox's deletion rules: what may be removed after a verified upload, and when.

The file system is the durable queue, so a local file is removed only once the server holds a
verified copy of exactly the bytes it has now. A bare `.csv` is still being appended to by its
sensor and is never removed; `X.csv.final` is the day's last state of `X.csv`, so removing it
removes `X.csv` too (the original uploader's `remove_local_file`).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("beemon.sink.files")

FINAL_SUFFIX = ".csv.final"


def file_version(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a local file, or None when it does not exist."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def remove_local_file(filepath: str) -> list[str]:
    """Remove an uploaded file by the outbox's rules; returns the paths actually removed.

    A bare `.csv` is kept; `X.csv.final` takes `X.csv` with it, and `X.csv` goes first: a crash
    between the two removals then leaves `X.csv.final` (uploaded again at the next start, then
    removed with nothing left), never a bare `X.csv` of a finished day that nothing would ever
    upload or remove. A file already gone is not an error.
    """
    if filepath.endswith(".csv"):
        return []
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
