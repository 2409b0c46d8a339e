"""`verify`: compare what the server holds with the per-day SHA256SUMS, changing nothing on either side.

For each day folder `<remote_root>/<station>/<date>`: a day without a manifest, files the manifest
names that are missing, files not in the manifest, and (where the server offers a SHA-256 command)
files whose server-side hash differs from the manifest's. One line per problem, then a summary.
Where the server cannot hash (OpenSSH; an FTP server without a hash command; an S3 object uploaded
in parts, whose checksum is composite), contents are not compared and the summary says so: the manifest
holds hashes, not sizes, and reading every file back over a station's link is not a check to run
unasked (`sha256sum -c SHA256SUMS` on the server does it locally).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pipeline.sink.journal import parse_lines
from pipeline.sink.manifest import MANIFEST_NAME
from pipeline.transport.base import Transport

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass
class Verdict:
    """What `verify` found: the problem lines, and how much was looked at."""

    problems: list[str] = field(default_factory=list)
    days: int = 0
    files: int = 0
    hashed: int = 0


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
    can_hash = transport.check == "hash"
    for date in dates:
        verdict.days += 1
        day = posixpath.join(station_dir, date)
        held = {name[len(date) + 1 :]: size for name, size in listing.items() if name.startswith(date + "/")}
        _verify_day(transport, day, held, can_hash, verdict, out)
    return verdict


def _verify_day(
    transport: Transport, day: str, held: dict[str, int], can_hash: bool, verdict: Verdict, out: Callable[[str], None]
) -> None:
    def problem(line: str) -> None:
        verdict.problems.append(line)
        out(line)

    if not held:
        problem(f"{day}: no such day folder on the server")
        return
    data = transport.get_small(posixpath.join(day, MANIFEST_NAME))
    if data is None:
        problem(f"{day}: no {MANIFEST_NAME} on the server")
        return
    manifest = parse_lines(data.decode("utf-8", "surrogateescape"))
    for name, expected in sorted(manifest.items()):
        path = posixpath.join(day, name)
        if name not in held:
            problem(f"missing: {path} (named in {MANIFEST_NAME}, not on the server)")
            continue
        verdict.files += 1
        actual = transport.remote_sha256(path)
        if actual is None and not can_hash:  # this object has no server-side hash (S3: a multipart upload)
            continue
        verdict.hashed += 1
        if actual != expected:
            problem(
                f"hash mismatch: {path} ({held[name]} B): the server's SHA-256 is {actual}, the manifest's {expected}"
            )
    for name in sorted(held):
        if name != MANIFEST_NAME and name not in manifest and not _temporary(name):
            problem(f"not in the manifest: {posixpath.join(day, name)} ({held[name]} B)")
