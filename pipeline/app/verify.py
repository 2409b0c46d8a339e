"""`verify`: compare what the server holds with the per-day SHA256SUMS, changing nothing on either side.

For each day folder `<remote_root>/<station>/<date>`: a day without a manifest, files the manifest
names that are missing, files not in the manifest, files whose size on the server differs from the
size the manifest records, and (where the server offers a SHA-256 command) files whose server-side
hash differs from the manifest's. One line per problem, then a summary. Sizes come with the listing,
so they are compared on every server; an entry without a size line (a manifest of an older version,
another tool's) has an unknown size, which the summary counts and is not a problem. Where the server
cannot hash (OpenSSH; an FTP server without a hash command; an S3 object uploaded in parts, whose
checksum is composite), contents are not compared and the summary says so: reading every file back
over a station's link is not a check to run unasked (`sha256sum -c SHA256SUMS` on the server does
it locally).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipeline.sink.manifest import MANIFEST_NAME
from pipeline.sink.manifest_text import Entry, ManifestText
from pipeline.transport.base import Transport

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Verdict:
    """What `verify` found: the problem lines, and how much was looked at."""

    problems: list[str] = field(default_factory=list)
    days: int = 0
    files: int = 0  # named in a manifest and present
    sized: int = 0  # of those, compared with the size the manifest records
    hashed: int = 0  # of those, compared with the server's SHA-256

    def summary(self, station: str, check: str) -> str:
        """The last line: what was compared, by which means, and how many problems."""
        unknown = self.files - self.sized
        sizes = (
            f"sizes of {self.sized} compared"
            if not unknown
            else f"sizes of {self.sized} compared, {unknown} unknown (no size line in {MANIFEST_NAME})"
        )
        contents = (
            f"{self.hashed} compared by the server's SHA-256"
            if check == "hash"
            else f"{self.hashed} compared by the server's SHA-256, the others' contents not compared"
            if self.hashed
            else f"contents not compared (the server offers no SHA-256 command; run sha256sum -c {MANIFEST_NAME} there)"
        )
        return (
            f"verify: {self.days} day(s) of {station}, {self.files} file(s) present, {sizes}, {contents}:"
            f" {len(self.problems) or 'no'} problem(s)"
        )


def _temporary(name: str) -> bool:
    base = posixpath.basename(name)
    return base.startswith(".") and base.endswith(".part")


def verify_days(
    transport: Transport, station_dir: str, dates: Iterable[str] | None, out: Callable[[str], None] = print
) -> Verdict:
    """Check each date's folder under `station_dir` (every date folder there when `dates` is None)."""
    verdict = Verdict()
    listing = transport.list_files(station_dir)
    if dates is None:
        dates = sorted({name.split("/", 1)[0] for name in listing if _DATE.match(name.split("/", 1)[0])})
    for date in dates:
        verdict.days += 1
        day = posixpath.join(station_dir, date)
        held = {name[len(date) + 1 :]: size for name, size in listing.items() if name.startswith(date + "/")}
        _DayCheck(transport, day, held, verdict, out).check()
    return verdict


@dataclass
class _DayCheck:
    """One day folder against its manifest; each problem goes to `out` and into the verdict."""

    transport: Transport
    day: str
    held: dict[str, int]  # what the server holds under the day folder, with sizes
    verdict: Verdict
    out: Callable[[str], None]

    def problem(self, line: str) -> None:
        self.verdict.problems.append(line)
        self.out(line)

    def check(self) -> None:
        if not self.held:
            self.problem(f"{self.day}: no such day folder on the server")
            return
        data = self.transport.get_small(posixpath.join(self.day, MANIFEST_NAME))
        if data is None:
            self.problem(f"{self.day}: no {MANIFEST_NAME} on the server")
            return
        manifest = ManifestText.parse(data.decode("utf-8", "surrogateescape")).entries
        for name, entry in sorted(manifest.items()):
            self._file(name, entry)
        for name in sorted(self.held):
            if name != MANIFEST_NAME and name not in manifest and not _temporary(name):
                self.problem(f"not in the manifest: {posixpath.join(self.day, name)} ({self.held[name]} B)")

    def _file(self, name: str, entry: Entry) -> None:
        """One entry: present, of the recorded size (when recorded), hashed alike (where the server hashes)."""
        path = posixpath.join(self.day, name)
        if name not in self.held:
            self.problem(f"missing: {path} (named in {MANIFEST_NAME}, not on the server)")
            return
        self.verdict.files += 1
        size = self.held[name]
        if entry.size is not None:
            self.verdict.sized += 1
            if size != entry.size:  # the hash cannot match either: one problem, one line, no hash asked
                self.problem(f"size mismatch: {path}: the server holds {size} B, the manifest says {entry.size} B")
                return
        actual = self.transport.remote_sha256(path)
        if actual is None and self.transport.check != "hash":  # no server-side hash (S3: a multipart upload)
            return
        self.verdict.hashed += 1
        if actual != entry.sha256:
            self.problem(
                f"hash mismatch: {path} ({size} B): the server's SHA-256 is {actual}, the manifest's {entry.sha256}"
            )
