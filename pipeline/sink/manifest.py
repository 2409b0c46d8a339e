"""The per-day SHA256SUMS on the server: kept from the journals, uploaded through the `Transport`.

For each remote day folder `<remote_root>/<station>/<date>` the sink keeps a journal of verified
deliveries (`pipeline.sink.journal`) and puts `<day>/SHA256SUMS` on the server (the transport's
`put_small`: temporary name, rename), so `cd <date> && sha256sum -c SHA256SUMS` checks the day; each
entry has its size on a comment line (`pipeline.sink.manifest_text`), for `verify` on servers that
cannot hash.

When a day's manifest goes up (`due`): it changed, and either its jobs have all left the board (the
day drained) and it is a past day, or it is the first upload of this run, or
`manifest_interval_seconds` passed since the last one; or it has been waiting that long while its
queue did not drain. So a day's live files cost no round trip each, and a drained past day is
finished at once. Before the first upload of a day in a run, the manifest already on the server is
read and merged (another run, another uploader): an entry is only ever replaced by the same name's,
and the lines of others (comments included) stay. That read costs nothing when the server has no
manifest yet (a new day): the day's first delivery of the run asks for it on the way
(`probe_for`, a SIZE in its rename's flight), and a manifest the server said it did not have is put
without being read, with the overwrite guard (its SIZE in the store's flight) in case one appeared
meanwhile; then it is read and merged after all. A delivery after which the day will be due asks the
put's data port in its rename's flight (`due_after`), so the put needs no round trip of its own for it.
A past day whose manifest went up after its queue drained is read back, and its journal removed
once the server holds exactly what was put. Uploads come from the workers between deliveries, on
their own sessions, one day at a time.
"""

from __future__ import annotations

import datetime
import functools
import logging
import posixpath
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.sink.journal import DayJournal
from pipeline.sink.manifest_text import Entry, ManifestText
from pipeline.transport.base import Transport
from pipeline.transport.errors import TargetExists, TransportFailure

log = logging.getLogger("beemon.sink.manifest")

MANIFEST_NAME = "SHA256SUMS"
#: a manifest that failed to go up is tried again after this long (or the interval, if shorter)
RETRY_SECONDS = 30.0
#: between jobs, the board is asked which days it still holds at most this often
LOOK_SECONDS = 1.0
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


@dataclass(slots=True)
class _Day:
    journal: DayJournal
    changes: int = 0  # lines recorded since the start (the upload compares before and after)
    uploaded: int = 0  # `changes` that the server's manifest holds
    first_change: float = 0.0
    last_upload: float | None = None
    retry_at: float = 0.0
    server: ManifestText | None = None  # what the server's manifest held, read once per run
    busy: bool = False
    appending: int = 0  # lines being written and fsync'ed, not yet in `changes`


class Manifests:
    """The days this sink keeps manifests of; `record` after each verified delivery, `flush` between jobs."""

    def __init__(
        self,
        folder: str,
        interval: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], str] = lambda: datetime.date.today().isoformat(),
    ) -> None:
        self.folder = folder
        self.interval = interval
        self._clock = clock
        self._today = today
        self._lock = threading.Lock()
        self._days: dict[str, _Day] = {}
        self._next_look = 0.0
        self._journal_failing = False
        self._asked: set[str] = set()  # days whose manifest a delivery was asked to probe (`probe_for`)
        self._missing: set[str] = set()  # days whose manifest the server said it did not have (`probed`)

    def restore(self) -> None:
        """Take up the journals an earlier run left: each may be ahead of the server, so each goes up again."""
        for journal in DayJournal.all_in(self.folder):
            self._days[journal.day] = _Day(journal, changes=1, first_change=self._clock())

    def record(self, remote_path: str, sha256: str, size: int) -> bool:
        """Journal one verified delivery of `size` bytes (fsync'ed on return); False for a path outside
        the day layout, or when the journal cannot be written (a full or read-only disk: one WARNING per
        episode). The delivery stands then: holding a verified file back for its manifest line would keep
        a full disk full; the line is missing from the day's manifest, which `verify` reports."""
        found = day_of(remote_path)
        if found is None:
            log.debug("no manifest for %s: not under <station>/<date>/<sensor>/", remote_path)
            return False
        day, name = found
        with self._lock:
            entry = self._days.get(day)
            if entry is None:
                entry = self._days[day] = _Day(DayJournal(self.folder, day))
            entry.appending += 1  # its journal stays until this line is counted (see `_upload`)
        try:  # outside the lock: the other workers append meanwhile and share the fsync (`DayJournal.append`)
            entry.journal.append(name, sha256, size)
        except OSError as error:
            with self._lock:
                entry.appending -= 1
                failing, self._journal_failing = self._journal_failing, True
            if not failing:
                log.warning(
                    "cannot write the manifest journal %s (%s): deliveries stay out of their day's"
                    " SHA256SUMS until it can be written",
                    entry.journal.path,
                    error.strerror or error,
                )
            return False
        with self._lock:
            entry.appending -= 1
            self._journal_failing = False
            if entry.changes == entry.uploaded:
                entry.first_change = self._clock()
            entry.changes += 1
        return True

    def probe_for(self, remote_path: str) -> str | None:
        """The manifest a delivery to `remote_path` should ask about on the way: its day's, once per run, while
        what the server holds is not known yet; else None."""
        found = day_of(remote_path)
        if found is None:
            return None
        day = found[0]
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

    def pending(self) -> list[str]:
        """The days whose manifest has changes the server does not hold yet."""
        with self._lock:
            return sorted(day for day, entry in self._days.items() if entry.changes != entry.uploaded)

    def flush(self, transport: Transport, held: Callable[[], list[str]], *, idle: bool = False) -> str | None:
        """Upload one due manifest over `transport` (see the module docstring); returns its day, or None.

        Between jobs (`idle` False) the board is looked at no more than once a second: with a long
        backlog on it, reading every job's path after each delivery would cost more than the upload.
        """
        now = self._clock()
        with self._lock:
            if not any(e.changes != e.uploaded and not e.busy and now >= e.retry_at for e in self._days.values()):
                return None
            if not idle and now < self._next_look:
                return None
            self._next_look = now + LOOK_SECONDS
        drained = self._drained(held)
        day = self._claim(drained)
        if day is None:
            return None
        entry = self._days[day]
        try:
            self._upload(transport, entry, final=day in drained and self._past(day))
        except TransportFailure as failure:
            log.warning("the manifest of %s did not go up (%s): tried again later", day, failure)
            with self._lock:
                entry.retry_at = self._clock() + min(RETRY_SECONDS, self.interval)
        finally:
            with self._lock:
                entry.busy = False
        return day

    def _drained(self, held: Callable[[], list[str]]) -> set[str]:
        with self._lock:
            days = set(self._days)
        if not days:
            return set()
        holding = {found[0] for path in held() if (found := day_of(path)) is not None}
        return days - holding

    def _claim(self, drained: set[str]) -> str | None:
        now = self._clock()
        with self._lock:
            for day, entry in sorted(self._days.items()):
                if entry.busy or entry.changes == entry.uploaded or now < entry.retry_at:
                    continue
                since_last = now - entry.last_upload if entry.last_upload is not None else float("inf")
                past_and_drained = day in drained and self._past(day)
                if (
                    past_and_drained
                    or (day in drained and since_last >= self.interval)
                    or now - entry.first_change >= self.interval
                ):
                    entry.busy = True
                    return day
        return None

    def _past(self, day: str) -> bool:
        return posixpath.basename(day) < self._today()

    def _upload(self, transport: Transport, entry: _Day, *, final: bool) -> None:
        day = entry.journal.day
        with self._lock:
            changes = entry.changes
        lines = entry.journal.read()
        with self._lock:
            new = entry.server is None and day in self._missing
            self._missing.discard(day)
        if new:  # the server said it has none: nothing to read or merge
            entry.server = ManifestText()
        try:
            merged, data = self._put(transport, entry, lines, new=new, then_read=final)
        except TargetExists:  # one appeared since: read it and merge after all
            log.debug("a manifest appeared at %s since the server said it had none: merged", manifest_path(day))
            entry.server = None
            merged, data = self._put(transport, entry, lines, new=False, then_read=final)
        entry.server = merged
        complete = " (day complete)" if final else ""
        log.info("manifest %s: %d file(s)%s", manifest_path(day), len(merged.entries), complete)
        with self._lock:
            entry.uploaded = changes
            entry.last_upload = self._clock()
        if not final:
            return
        back = transport.get_small(manifest_path(day))
        with self._lock:
            if back != data:
                log.warning("the manifest %s read back differs from what was put: put again later", manifest_path(day))
                entry.server, entry.uploaded = None, 0
                entry.retry_at = self._clock() + min(RETRY_SECONDS, self.interval)
                return
            if entry.changes != changes or entry.appending:
                return
            entry.journal.remove()
            del self._days[day]
        log.debug("journal of %s removed: the server's manifest is verified", day)

    def _put(
        self, transport: Transport, entry: _Day, lines: dict[str, Entry], *, new: bool, then_read: bool
    ) -> tuple[ManifestText, bytes]:
        """Merge the journal's `lines` into what the server holds (read first when not known) and put it."""
        path = manifest_path(entry.journal.day)
        if entry.server is None:
            held = transport.get_small(path)
            entry.server = ManifestText.parse(held.decode("utf-8", "surrogateescape") if held else "")
        merged = entry.server.merged(lines)
        data = merged.render()
        transport.put_small(path, data, new=new, then_read=then_read)
        return merged, data
