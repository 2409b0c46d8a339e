"""What a delivery asks about its day's manifest on the way, so that the manifest costs no round trip of its own.

The day's first delivery of a run asks whether the server has the day's manifest (`probe_for`: a SIZE
in its rename's flight; a manifest it does not have is put without being read first), and a delivery
after which the day will be due asks the put's data port in its rename's flight (`due_after`). The
state of each day (`DayState`) is `pipeline.sink.manifest.Manifests`'; these are its questions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.sink.journal import DayJournal
from pipeline.sink.manifest_paths import day_of, manifest_path
from pipeline.sink.manifest_text import ManifestText


@dataclass(slots=True)
class DayState:
    """One day's manifest in this run: its journal, what the server holds of it, when it goes up next."""

    journal: DayJournal
    changes: int = 0  # lines recorded since the start (the upload compares before and after)
    uploaded: int = 0  # `changes` that the server's manifest holds
    first_change: float = 0.0
    last_upload: float | None = None
    retry_at: float = 0.0
    server: ManifestText | None = None  # what the server's manifest held, read once per run
    busy: bool = False
    failures: int = 0  # failed puts in a row
    last_failure: str = ""
    appending: int = 0  # lines being written and fsync'ed, not yet in `changes`


class FlightQuestions:
    """`Manifests`' answers to a delivery in flight (a base class: the state is the manifests')."""

    interval: float
    _lock: threading.Lock
    _days: dict[str, DayState]
    _asked: set[str]  # days whose manifest a delivery was asked to probe (`probe_for`)
    _missing: set[str]  # days whose manifest the server said it did not have (`probed`)
    _clock: Callable[[], float]

    def _past(self, day: str) -> bool:
        raise NotImplementedError

    def probe_for(self, remote_path: str) -> str | None:
        """The manifest a delivery to `remote_path` should ask about on the way: its day's, once per run, while
        what the server holds is not known yet; else None."""
        found = day_of(remote_path)
        if found is None:
            return None
        day = found[0]
        if day in self._asked:  # (most deliveries; the set only grows, so no lock is needed to see it)
            return None
        with self._lock:
            entry = self._days.get(day)
            if day in self._asked or (entry is not None and entry.server is not None):
                return None
            self._asked.add(day)
        return manifest_path(day)

    def probed(self, remote_path: str, exists: bool) -> None:
        """The server's answer to the question `probe_for` gave the delivery to `remote_path`: a missing
        manifest is not read before the day's first put."""
        found = day_of(remote_path)
        if found is None:
            return
        day = found[0]
        with self._lock:
            if exists:
                self._missing.discard(day)
            else:
                self._missing.add(day)

    def due_after(self, remote_path: str, held: Callable[[], list[str]]) -> bool:
        """Whether the day of `remote_path` (a delivery now in flight) will be due once that delivery is done:
        nothing else of the day on the board, and past, or not uploaded within the interval."""
        found = day_of(remote_path)
        if found is None:
            return False
        day = found[0]
        others = held()
        if remote_path in others:
            others.remove(remote_path)
        if any((other := day_of(path)) is not None and other[0] == day for path in others):
            return False
        now = self._clock()
        with self._lock:
            entry = self._days.get(day)
            if entry is None:
                return True  # this delivery makes its first change
            if entry.busy or now < entry.retry_at:
                return False
            last = entry.last_upload
        return self._past(day) or last is None or now - last >= self.interval
