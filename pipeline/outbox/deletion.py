"""The outbox's deletion mechanics: how an uploaded file is removed, under read leases, with its companion.

The file system is the durable queue, so a local file is removed only once the server holds a
verified copy of exactly the bytes it has now. A bare `.csv` is still being appended to by its
sensor and is never removed; `X.csv.final` is the day's last state of `X.csv`, so removing it
removes `X.csv` too (the original uploader's `remove_local_file`), once the `.final` is seen to
hold all of `X.csv`.

A bare `X.csv` delivered as its day's file (its `.final` never came, or is shorter) is removed like
a `.final`; a `.final` beside it goes first, and only when the delivered bytes hold it (a later upload
of it would otherwise replace the longer copy on the server). Extensions in any case.

Whether a file is to be removed at all is the sink's decision (`pipeline.sink.attempt.settle`), which
asks `keeps_bare_csv` here.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from operators.file_rules import bare_csv_of, final_names, is_daily_csv, is_final
from pipeline.outbox.file_state import FileState, Held, file_state, held_for_reading

log = logging.getLogger("beemon.sink.files")


def final_beside(csv_path: str) -> str | None:
    """The `.final` of a bare `X.csv` (`X.csv.final` or `X.csv.FINAL`) when one exists, else None."""
    return next((final for final in final_names(csv_path) if os.path.lexists(final)), None)


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


def keeps_bare_csv(local_path: str, *, day_file: bool = False) -> bool:
    """A bare `X.csv` is still appended to by its sensor: never removed, unless delivered as its day's file."""
    return is_daily_csv(local_path) and not day_file


def remove_local_file(filepath: str) -> list[str]:
    """The original API's removal of an uploaded file; returns the paths actually removed.

    No version to compare: only a file some process has open for writing is kept, and a bare `.csv`
    (`X.csv.final` takes `X.csv` along, when it holds all of it).
    """
    if keeps_bare_csv(filepath):
        return []
    return remove_uploaded(filepath).removed


def remove_uploaded(filepath: str, version: FileState | None = None) -> Removal:
    """Remove an uploaded file by the outbox's rules, if it is still `version` (when given).

    `X.csv.final` takes `X.csv` with it, and `X.csv` goes first: a crash
    between the two removals then leaves `X.csv.final` (uploaded again at the next start, then
    removed with nothing left), never a bare `X.csv` of a finished day that nothing would ever
    upload or remove. A file already gone is not an error. `X.csv` goes only when the `.final`
    holds all of it: no larger, not newer, not open for writing, and a byte prefix of the `.final`;
    otherwise it is kept with one log line saying why.

    The check and the removal happen under a read lease (`held_for_reading`): a file open for
    writing is kept, and no writer can open it between the comparison and the removal. A bare
    `.csv` (the sink removes one only when it went up as its day's file) goes by `_day_file_may_go`.
    """
    try:
        with held_for_reading(filepath) as held:
            if held is None:
                return Removal(kept="it is open for writing")
            current = FileState.of(held.stat)
            if file_state(filepath) != current or (version is not None and current != version):
                return Removal(kept="it changed after it was uploaded", changed=True)
            return Removal(_remove_with_companion(filepath, held))
    except FileNotFoundError:
        return Removal()
    except OSError:  # cannot be opened (a symlink, no read permission): compare by name only
        if version is not None and file_state(filepath) not in (version, None):
            return Removal(kept="it changed after it was uploaded", changed=True)
        return Removal(_remove_with_companion(filepath, None))


def _remove_with_companion(filepath: str, held: Held | None) -> list[str]:
    """Remove `filepath` (held under a lease, when it could be opened), a checked bare `.csv` first."""
    removed = []
    if is_final(filepath):
        bare = bare_csv_of(filepath)
        if _bare_csv_removed(bare, filepath, held):
            removed.append(bare)
    elif is_daily_csv(filepath):
        final = final_beside(filepath)
        if final is not None and not _day_file_may_go(final, filepath, held):
            return removed
    if _remove(filepath):
        removed.append(filepath)
    return removed


def _day_file_may_go(final: str, csv: str, held_csv: Held | None) -> bool:
    """Whether a delivered day-file `X.csv` may go, given the `.final` beside it (removed here when it should go).

    The `.final` is removed when it is the beginning of the delivered bytes (an empty or cut
    `.final`); it stays, and the csv may go, when it holds all of the csv (written after the upload
    began: it goes up next and replaces the server's copy); otherwise both stay, with a warning.
    """
    try:
        with held_for_reading(final) as held:
            if held is None:
                reason = f"{os.path.basename(final)} is open for writing"
            elif held_csv is None:
                reason = f"{os.path.basename(csv)} could not be read to compare"
            elif held.stat.st_size <= held_csv.stat.st_size and _is_prefix(held.fd, held_csv.fd, held.stat.st_size):
                return _remove(final) or not os.path.lexists(final)
            elif _is_prefix(held_csv.fd, held.fd, held_csv.stat.st_size):
                return True
            else:
                reason = f"{os.path.basename(final)} and it differ (neither is the beginning of the other)"
    except FileNotFoundError:
        return True
    except OSError as error:
        reason = f"{os.path.basename(final)} cannot be read ({error.strerror or error})"
    log.warning(
        "kept %s and %s after delivering %s as the day's file: %s (left for a person to check)",
        csv,
        os.path.basename(final),
        os.path.basename(csv),
        reason,
    )
    return False


def _bare_csv_removed(bare: str, final: str, held_final: Held | None) -> bool:
    """Remove `X.csv` beside its uploaded `X.csv.final` only if the final holds all of it; else say why not.

    The sensor may have appended to `X.csv` after writing the `.final`: then `X.csv` is larger, or
    newer, or no longer a prefix of the `.final`, and the uploaded copy lacks those lines.
    """
    try:
        with held_for_reading(bare) as held:
            if held is None:
                reason = "it is open for writing"
            elif held_final is None:
                reason = f"{os.path.basename(final)} could not be read to compare"
            elif held.stat.st_size > held_final.stat.st_size:
                reason = f"it is larger than the .final ({held.stat.st_size} B > {held_final.stat.st_size} B)"
            elif held.stat.st_mtime_ns > held_final.stat.st_mtime_ns:
                reason = "it was modified after the .final was written"
            elif file_state(bare) != FileState.of(held.stat):
                reason = "it changed while it was compared"
            elif not _is_prefix(held.fd, held_final.fd, held.stat.st_size):
                reason = "its content is not the beginning of the .final's"
            else:
                return _remove(bare)
    except FileNotFoundError:
        return False
    except OSError as error:
        reason = f"it cannot be read ({error.strerror or error})"
    log.warning(
        "kept %s beside the delivered %s: %s; the server's copy may lack lines of it (left for a person to check)",
        bare,
        os.path.basename(final),
        reason,
    )
    return False


def _is_prefix(fd: int, whole_fd: int, size: int, chunk: int = 1 << 16) -> bool:
    """Whether the first `size` bytes of `fd` and of `whole_fd` are the same, read in chunks."""
    offset = 0
    while offset < size:
        want = min(chunk, size - offset)
        part = os.pread(fd, want, offset)
        if not part or part != os.pread(whole_fd, len(part), offset):
            return False
        offset += len(part)
    return True


def _remove(target: str) -> bool:
    """Remove one file; False when it was gone already or could not be removed (logged)."""
    try:
        os.remove(target)
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("could not remove %s: %s", target, error.strerror or error)
        return False
    return True
