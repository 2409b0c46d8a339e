"""The text of a day's SHA256SUMS: coreutils' `sha256sum` lines, each with its file's size in a comment.

    # size 200000 audio/rpi4@2024-05-02@10-00-00.wav
    9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08  audio/rpi4@2024-05-02@10-00-00.wav

`sha256sum -c --strict SHA256SUMS` skips lines that start with `#`, so the size lines cost standard
tools nothing, while `verify` can tell a truncated file on a server that cannot hash (SFTP, most FTP
servers, S3 objects sent in parts). A size line belongs to the entry right after it (same name); an
entry without one (an older manifest, another tool's) has an unknown size.

A manifest read from the server keeps every line it does not understand or does not own: comments
and lines before the first entry stay on top, a line between entries stays with the entry after it,
lines after the last stay last, and an entry nobody re-delivers is written back exactly as read.
Merging replaces only the entries of the names merged in (each with its size line); entries are
written sorted by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: a checksum line, coreutils' `sha256sum` text format (`*` marks its binary mode: read, never written)
ENTRY = re.compile(r"^([0-9a-fA-F]{64}) [ *](\S.*)$")
#: the size comment this uploader writes right before an entry
SIZE = re.compile(r"^# size (\d+) (\S.*)$")


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of a day: its SHA-256 (lower-case hex) and its size in bytes (None: not recorded)."""

    sha256: str
    size: int | None = None


@dataclass(slots=True)
class _Block:
    entry: Entry
    lines: list[str]  # the entry's own lines (its size line, its checksum line) as written
    notes: list[str] = field(default_factory=list)  # lines of others right before it, kept as read


def entry_lines(name: str, entry: Entry) -> list[str]:
    """The lines this uploader writes for one file: its size comment (when known), then its checksum."""
    checksum = f"{entry.sha256}  {name}"
    return [checksum] if entry.size is None else [f"# size {entry.size} {name}", checksum]


class ManifestText:
    """A parsed SHA256SUMS: its entries by name, and every other line in its place."""

    def __init__(self) -> None:
        self._blocks: dict[str, _Block] = {}
        self._head: list[str] = []
        self._tail: list[str] = []

    @classmethod
    def parse(cls, text: str) -> ManifestText:
        """Read a manifest (its last line may lack its newline); the last entry of a name wins."""
        manifest = cls()
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        waiting: list[str] = []  # lines since the last entry
        for line in lines:
            match = ENTRY.match(line.removesuffix("\r"))  # a CRLF manifest: read, kept as it is
            if match is None:
                waiting.append(line)
                continue
            name = match.group(2)
            own, size = [line], None
            if waiting and (sized := SIZE.match(waiting[-1].removesuffix("\r"))) is not None and sized.group(2) == name:
                own, size = [waiting.pop(), line], int(sized.group(1))
            notes, waiting = waiting, []
            if not manifest._blocks:
                manifest._head, notes = notes, []
            earlier = manifest._blocks.pop(name, None)
            if earlier is not None:  # a name listed twice: the later line stands, the notes of both stay
                notes = earlier.notes + notes
            manifest._blocks[name] = _Block(Entry(match.group(1).lower(), size), own, notes)
        manifest._tail = waiting
        return manifest

    @property
    def entries(self) -> dict[str, Entry]:
        return {name: block.entry for name, block in self._blocks.items()}

    def merged(self, entries: dict[str, Entry]) -> ManifestText:
        """A copy with `entries` in: a name already listed gets the new entry in its place (its notes
        stay); a size the new entry lacks is kept when the hash is the same file's."""
        merged = ManifestText()
        merged._head, merged._tail = list(self._head), list(self._tail)
        merged._blocks = {name: _Block(b.entry, list(b.lines), list(b.notes)) for name, b in self._blocks.items()}
        for name, entry in entries.items():
            block = merged._blocks.get(name)
            if block is None:
                merged._blocks[name] = _Block(entry, entry_lines(name, entry))
            elif entry.size is None and entry.sha256 == block.entry.sha256:
                continue  # an older journal line of the same file: what the server says of it stands
            elif entry != block.entry:
                block.entry, block.lines = entry, entry_lines(name, entry)
        return merged

    def render(self) -> bytes:
        """The manifest's bytes: the head, each entry sorted by name after its notes, the tail."""
        lines = list(self._head)
        for name in sorted(self._blocks):
            block = self._blocks[name]
            lines += block.notes + block.lines
        lines += self._tail
        return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


def render(entries: dict[str, Entry]) -> bytes:
    """A manifest of `entries` alone, sorted by name."""
    return ManifestText().merged(entries).render()
