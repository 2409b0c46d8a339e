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
once the server holds exactly what was put; so is a day that became past while the sink ran, after
its last put (a station up for months passes midnight with nothing more of that day to send).
Uploads come from the workers between deliveries, on their own sessions, one day at a time.
`run --once` ends with a last round (`finish`, `pipeline.sink.manifest_round`): every pending day
goes up then, retried like a file.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import posixpath
import threading
import time
from collections.abc import Callable

from pipeline.sink.journal import DayJournal
from pipeline.sink.manifest_flights import DayState, FlightQuestions
from pipeline.sink.manifest_paths import MANIFEST_NAME, day_of, days_of, manifest_path
from pipeline.sink.manifest_round import LastRound
from pipeline.sink.manifest_text import Entry, ManifestText
from pipeline.sink.retry import RetryPolicy
from pipeline.transport.base import Transport
from pipeline.transport.errors import TargetExists, TransportFailure

__all__ = ["MANIFEST_NAME", "Manifests", "day_of", "manifest_path"]
log = logging.getLogger("beemon.sink.manifest")

#: a manifest that failed to go up is tried again after this long (or the interval, if shorter)
RETRY_SECONDS = 30.0
#: between jobs, the board is asked which days it still holds at most this often
LOOK_SECONDS = 1.0


class Manifests(FlightQuestions):
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
        self._days: dict[str, DayState] = {}
        self._next_look = 0.0
        self._journal_failing = False
        self._asked: set[str] = set()  # days whose manifest a delivery was asked to probe (`probe_for`)
        self._missing: set[str] = set()  # days whose manifest the server said it did not have (`probed`)
        self._round: LastRound | None = None  # run --once's last round (`finish`)

    def restore(self) -> None:
        """Take up the journals an earlier run left: each goes up again unless the server's manifest holds all its
        lines (`DayJournal.sent_all`) and its day is not past (a past day's is read back before it goes)."""
        for journal in DayJournal.all_in(self.folder):
            pending = self._past(journal.day) or not journal.sent_all()
            self._days[journal.day] = DayState(journal, changes=int(pending), first_change=self._clock())

    def finish(self, attempts: int, retry: RetryPolicy, on_settled: Callable[[dict[str, str]], None]) -> None:
        """Start `run --once`'s last round: every pending day is due now, each put tried `attempts` times at most
        on `retry`'s schedule; `on_settled(days left -> why)` once no pending day is left to try."""
        with self._lock:
            self._round = LastRound(attempts, retry, on_settled)
            for day, entry in self._days.items():  # due now, unless its attempts were spent before the round
                spent = entry.changes != entry.uploaded and entry.failures >= attempts
                entry.retry_at = self._round.failed(day, entry.failures, entry.last_failure, 0.0) if spent else 0.0
        self._settle()

    def due_in(self) -> float:
        """Seconds until a manifest of the last round may be tried (0: now); infinity outside the round."""
        now = self._clock()
        with self._lock:
            if self._round is None:
                return math.inf
            waits = [e.retry_at - now for e in self._days.values() if e.changes != e.uploaded and not e.busy]
        return max(0.0, min(waits, default=math.inf))

    def _settle(self) -> None:
        with self._lock:
            if self._round is None:
                return
            left = self._round.settle(sorted(d for d, e in self._days.items() if e.changes != e.uploaded))
        if left is not None:
            self._round.on_settled(left)

    def record(self, remote_path: str, sha256: str, size: int) -> bool:
        """Journal one verified delivery of `size` bytes (fsync'ed on return); False for a path outside
        the day layout, or when the journal cannot be written (a full or read-only disk: one WARNING per
        episode). The delivery stands then: holding a verified file back for its manifest line would keep
        a full disk full; the line is missing from the day's manifest, which `verify` reports."""
        return self.record_many([(remote_path, sha256, size)]) == 1

    def record_many(self, deliveries: list[tuple[str, str, int]]) -> int:
        """`record` for several deliveries (remote path, sha256, size): each day's lines in one write and one
        fsync (a loop verifying many small files at once). Returns how many lines were journaled."""
        by_day: dict[str, list[tuple[str, str, int]]] = {}
        for remote_path, sha256, size in deliveries:
            found = day_of(remote_path)
            if found is None:
                log.debug("no manifest for %s: not under <station>/<date>/<sensor>/", remote_path)
                continue
            day, name = found
            by_day.setdefault(day, []).append((name, sha256, size))
        return sum(self._append(day, lines) for day, lines in by_day.items())

    def _append(self, day: str, lines: list[tuple[str, str, int]]) -> int:
        with self._lock:
            entry = self._days.get(day)
            if entry is None:
                entry = self._days[day] = DayState(DayJournal(self.folder, day))
            entry.appending += 1  # its journal stays until these lines are counted (see `_upload`)
        try:  # outside the lock: the other workers append meanwhile and share the fsync (`DayJournal.append`)
            entry.journal.append_many(lines)
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
            return 0
        with self._lock:
            entry.appending -= 1
            self._journal_failing = False
            if entry.changes == entry.uploaded:
                entry.first_change = self._clock()
            entry.changes += len(lines)
        return len(lines)

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
        if not idle and now < self._next_look:  # (most calls, one per job: nothing else is looked at then)
            return None
        today = self._today()  # (after the gate above: not once per job)
        with self._lock:
            if not idle and now < self._next_look:
                return None
            # A day still kept is not finished: one with changes, or a past one (midnight passed while this
            # sink ran, after its last put: once its queue drains it is put and read back, and its journal goes).
            if not any(
                (e.changes != e.uploaded or posixpath.basename(day) < today) and not e.busy and now >= e.retry_at
                for day, e in self._days.items()
            ):
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
            self._failed(entry, str(failure))
        finally:
            with self._lock:
                entry.busy = False
            self._settle()
        return day

    def _failed(self, entry: DayState, reason: str) -> None:
        """A put (or its read-back) failed: try again later; in the last round, on its schedule while attempts last."""
        day = entry.journal.day
        with self._lock:
            entry.failures += 1
            entry.last_failure = reason
            if self._round is None:
                entry.retry_at = self._clock() + min(RETRY_SECONDS, self.interval)
            else:
                entry.retry_at = self._round.failed(day, entry.failures, reason, self._clock())
        if self._round is None:
            log.warning("the manifest of %s did not go up (%s): tried again later", day, reason)
        elif entry.retry_at < math.inf:
            wait = entry.retry_at - self._clock()
            log.info("the manifest of %s did not go up (%s): trying again in %.1f s", day, reason, max(0.0, wait))

    def _drained(self, held: Callable[[], list[str]]) -> set[str]:
        with self._lock:
            days = set(self._days)
        if not days:
            return set()
        return days - days_of(held())

    def _claim(self, drained: set[str]) -> str | None:
        now = self._clock()
        with self._lock:
            for day, entry in sorted(self._days.items()):
                if entry.busy or now < entry.retry_at:
                    continue
                past_and_drained = day in drained and self._past(day)
                if entry.changes == entry.uploaded and not past_and_drained:  # (drained and past: finished now)
                    continue
                since_last = now - entry.last_upload if entry.last_upload is not None else float("inf")
                if (
                    self._round is not None
                    or past_and_drained
                    or (day in drained and since_last >= self.interval)
                    or now - entry.first_change >= self.interval
                ):
                    entry.busy = True
                    return day
        return None

    def _past(self, day: str) -> bool:
        return posixpath.basename(day) < self._today()

    def _upload(self, transport: Transport, entry: DayState, *, final: bool) -> None:
        day = entry.journal.day
        with self._lock:
            changes = entry.changes
        lines, length = entry.journal.snapshot()
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
        with contextlib.suppress(OSError):  # without the mark, the next run puts it once more
            entry.journal.mark_sent(length)
        with self._lock:
            entry.last_upload = self._clock()
            if not final:  # (a final one counts once read back: a read that fails puts it again)
                entry.uploaded, entry.failures = changes, 0
                return
        back = transport.get_small(manifest_path(day))
        if back != data:
            log.warning("the manifest %s read back differs from what was put: put again", manifest_path(day))
            entry.server = None
            self._failed(entry, "the manifest read back differs from what was put")
            return
        with self._lock:
            entry.uploaded, entry.failures = changes, 0
            if entry.changes != changes or entry.appending:
                return
            entry.journal.remove()
            del self._days[day]
        log.debug("journal of %s removed: the server's manifest is verified", day)

    def _put(
        self, transport: Transport, entry: DayState, lines: dict[str, Entry], *, new: bool, then_read: bool
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
