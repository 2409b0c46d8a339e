"""What this process knows of the server's `.part` files and final names, and its journal across restarts.

Per remote path: which job's bytes this process last sent into its `.part` (from each attempt's
`DeliveryProgress`), so a later attempt resumes only a `.part` that holds the beginning of its own
version, never one another job (or another process) wrote; and whether that STOR got the whole
file, so a job parked with all of it in the `.part` (a refused rename) tries only the rename again.
Per final name: which source file this process last renamed onto it (the newest `placed_memory`),
so the overwrite guard can tell its own earlier copy from another file (`may_replace`).

The journal (`load_journal`, `save_journal`) carries the records of transfers cut at the stop
deadline to the next run, so they resume from their `.part`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from operators.file_rules import delivered_file, is_final
from operators.model import UploadJob
from pipeline.sink.model import Outcome

if TYPE_CHECKING:
    from pipeline.transport.base import DeliveryProgress

log = logging.getLogger("beemon.sink")
#: (remote path, local path, size, mtime_ns, complete): one `.part` this process's STORs left unrenamed.
PartRecord = tuple[str, str, int, int, bool]


def _version(job: UploadJob) -> tuple[str, int, int]:
    return job.local_path, job.size, job.mtime_ns


class PartRecords:
    """The `.part` and final-name records of one sink (thread-safe)."""

    def __init__(self, placed_memory: int = 10_000) -> None:
        self._lock = threading.Lock()
        #: remote path -> ((local path, size, mtime_ns) whose STOR last wrote that path's `.part`, all of it?)
        self._parts: dict[str, tuple[tuple[str, int, int], bool]] = {}
        #: remote path -> the source file this process last renamed onto it (the newest `placed_memory`)
        self._placed: OrderedDict[str, str] = OrderedDict()
        self.placed_memory = placed_memory

    def is_ours(self, job: UploadJob) -> bool:
        """Whether the `.part` of `job.remote_path` was last written by a STOR of this very version of the file."""
        with self._lock:
            return self._parts.get(job.remote_path, (None, False))[0] == _version(job)

    def is_complete(self, job: UploadJob) -> bool:
        """Whether that `.part` got the whole of this version (its STOR ended with the 226)."""
        with self._lock:
            return self._parts.get(job.remote_path) == (_version(job), True)

    def may_replace(self, job: UploadJob, existing_size: int) -> bool:
        """Whether the file of `existing_size` bytes at `job.remote_path` may be replaced by `job`'s file.

        Yes when this process placed it there from the same source file (an earlier version, or the
        `X.csv` of an `X.csv.final`); no when it placed another file there; otherwise only a copy of
        the same size (what a crash between the rename and the local delete leaves) is replaced, or,
        for a `.final`, a copy no larger than it: its day's `X.csv` sent when the `.final` was late.
        """
        with self._lock:
            source = self._placed.get(job.remote_path)
        if source is not None:
            return source == delivered_file(job.local_path)
        return existing_size == job.size or (is_final(job.local_path) and existing_size <= job.size)

    def record(self, job: UploadJob, progress: DeliveryProgress | None, outcome: Outcome) -> None:
        """Note whose bytes `job`'s attempt left in its remote path's `.part`, and what it renamed where."""
        remote = job.remote_path
        with self._lock:
            if progress is not None and progress.renamed:
                self._placed[remote] = delivered_file(job.local_path)
                self._placed.move_to_end(remote)
                if len(self._placed) > self.placed_memory:
                    self._placed.popitem(last=False)
            abandoned = outcome == Outcome.GONE and self._parts.get(remote, (("",), False))[0][0] == job.local_path
            if outcome == Outcome.DELIVERED or abandoned:
                self._parts.pop(remote, None)  # renamed away, or nobody will resume it
            elif progress is not None and progress.stored:
                self._parts[remote] = (_version(job), progress.complete)

    def snapshot(self) -> list[PartRecord]:
        """Every `.part` this process's STORs left unrenamed."""
        with self._lock:
            return [(remote, *version, complete) for remote, (version, complete) in self._parts.items()]

    def restore(self, records: list[PartRecord]) -> None:
        """Take over `snapshot` of an earlier process, so that its cut transfers resume here."""
        with self._lock:
            for remote, local, size, mtime_ns, complete in records:
                self._parts.setdefault(remote, ((local, size, mtime_ns), complete))


def load_journal(journal: str) -> list[PartRecord]:
    """The records an earlier run left, once: the file is removed as it is read (a stale one must not linger)."""
    try:
        with open(journal, encoding="utf-8") as handle:
            records = json.load(handle)
        os.unlink(journal)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as error:
        log.warning("cannot read %s (%s): cut transfers start again from the beginning", journal, error)
        with contextlib.suppress(OSError):
            os.unlink(journal)
        return []
    return [
        (str(r[0]), str(r[1]), int(r[2]), int(r[3]), bool(r[4])) for r in records if isinstance(r, list) and len(r) == 5
    ]


def save_journal(journal: str, records: list[PartRecord]) -> None:
    """Write the records atomically (temp file, fsync, rename), or nothing when there are none."""
    if not records:
        return
    temporary = f"{journal}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(records, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, journal)
    except OSError as error:
        log.warning("cannot write %s (%s): cut transfers will start again from the beginning", journal, error)
        return
    log.info("%d transfer(s) cut at the stop deadline will resume from their .part at the next start", len(records))
