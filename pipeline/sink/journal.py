"""The local journal of a day's verified deliveries: one file per remote day folder, one line per file.

A line is `<sha256 hex> <size> <sensor>/<name>` (the day's SHA256SUMS writes the size on a comment
line of its own, `pipeline.sink.manifest_text`; here one line per file keeps a record whole or torn),
appended and fsync'ed as each delivery is verified (before the local file is removed), so a crash or
SIGKILL at any instant loses no line; the workers' lines share their fsyncs (a group commit: a line
written while another's fsync ran is covered by the next one). A torn last line (no newline, or not
a whole line) is ignored when read and cut off before the next append. Lines of older versions,
`<sha256 hex>  <sensor>/<name>` without a size, are still read (size unknown). The last line for a
name wins: a re-delivered file replaces its own. The journals live in the outbox's state folder
(`.beemon/manifests/`, never watched nor uploaded), named by their remote day folder.

Beside a journal, `<name>.sent` holds how many of its bytes the server's manifest holds (written after
each put; losing it costs one more put, never a line). A journal is pending (`pending_days`) while its
manifest lacks some of its lines, or while its day is past: a past day's journal stays until its final
manifest was read back from the server.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from urllib.parse import quote, unquote

from pipeline.sink.manifest_text import Entry

#: a journal line: the hash, then the size and one space, or (older lines, no size) two spaces
LINE = re.compile(r"^([0-9a-fA-F]{64}) (?:(\d+) |[ *])(\S.*)$")
SUFFIX = ".journal"
#: beside a journal: the length of the journal that the server's manifest holds
SENT_SUFFIX = ".sent"


def parse_journal(text: str) -> dict[str, Entry]:
    """name -> entry of every whole, well-formed line (the last one of a name wins); others are skipped."""
    entries: dict[str, Entry] = {}
    lines = text.split("\n")
    for line in lines[:-1]:  # the piece after the last newline is a torn line, or empty
        match = LINE.match(line)
        if match:
            size = int(match.group(2)) if match.group(2) is not None else None
            entries[match.group(3)] = Entry(match.group(1).lower(), size)
    return entries


class DayJournal:
    """The journal of one remote day folder (`day`), in `folder`."""

    def __init__(self, folder: str, day: str) -> None:
        self.day = day
        self.path = os.path.join(folder, quote(day, safe="") + SUFFIX)
        self._repaired = False
        self._write = threading.Lock()  # creating, repairing and writing: one line at a time
        self._sync = threading.Lock()  # one fsync at a time; it covers every line written before it began
        self._written = 0  # lines written by this object
        self._synced = 0  # of those, the lines known to be on the disk
        #: the descriptor lines are appended through and fsync'ed by, kept open between lines (an open and
        #: close of the path less per line and per fsync); opened again once the file it names is no longer
        #: at the path (unlinked or renamed over); the old ones are closed with `remove` (an fsync may hold one)
        self._fd: int | None = None
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file `_fd` appends to
        self._retired: list[int] = []

    @classmethod
    def all_in(cls, folder: str) -> list[DayJournal]:
        """Every journal left in `folder` (by an earlier run, or this one)."""
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            return []
        return [cls(folder, unquote(name[: -len(SUFFIX)])) for name in names if name.endswith(SUFFIX)]

    def read(self) -> dict[str, Entry]:
        return self.snapshot()[0]

    def snapshot(self) -> tuple[dict[str, Entry], int]:
        """The entries, and the length of the text they were read from (for `mark_sent`)."""
        try:
            with open(self.path, "rb") as journal:
                data = journal.read()
        except FileNotFoundError:
            return {}, 0
        return parse_journal(data.decode("utf-8", "surrogateescape")), len(data)

    def mark_sent(self, length: int) -> None:
        """Note that the server's manifest holds the journal's first `length` bytes (its lines read then)."""
        temporary = self.path + SENT_SUFFIX + ".tmp"
        with open(temporary, "w") as mark:
            mark.write(str(length))
        os.replace(temporary, self.path + SENT_SUFFIX)

    def sent_all(self) -> bool:
        """Whether the server's manifest holds every line of the journal (as far as `mark_sent` knows)."""
        return _sent_all(self.path)

    def append(self, name: str, sha256: str, size: int) -> None:
        """Add one line and have it fsync'ed (and, for a new journal, its folder) before returning.

        Safe from several threads: four workers verifying small files at once would otherwise queue
        behind each other's fsync (one per file, most of a small file's delivery on a slow card).
        """
        self.append_many([(name, sha256, size)])

    def append_many(self, entries: list[tuple[str, str, int]]) -> None:
        """Add lines (name, sha256, size) in one write and have them fsync'ed together before returning."""
        for name, _, _ in entries:
            if "\n" in name or "\r" in name:
                raise ValueError(f"a manifest cannot name {name!r}")
        line = b"".join(
            f"{sha256} {size} {name}\n".encode("utf-8", "surrogateescape") for name, sha256, size in entries
        )
        with self._write:
            fd, created = self._descriptor()
            try:
                _write_all(fd, line)
            except OSError:  # (a full disk, a file size limit) the caller keeps the local file
                self._torn()
                raise
            if created:  # the new file's name must survive too: its data, then its folder
                os.fsync(fd)
                _fsync_folder(os.path.dirname(self.path))
            self._written += 1
            mine = self._written
        self._write_back(mine)

    def _descriptor(self) -> tuple[int, bool]:
        """The append descriptor of the file at `path`, and whether that file was created now.

        A journal deleted, replaced or moved away behind this object's back (a person cleaning the
        state folder; the outbox moved aside and made again while running) gets the line in the file
        at its path, as it did when each line opened the path: the path no longer names the kept
        descriptor's file (its device and inode), and is opened again. (A link count would miss a
        file moved aside with its folder: it keeps its link there, where no manifest is made from it.)
        """
        if self._fd is not None:
            try:
                now = os.stat(self.path)
            except FileNotFoundError:
                now = None
            if now is not None and (now.st_dev, now.st_ino) == self._file_id:
                return self._fd, False
        if self._fd is not None:
            self._retired.append(self._fd)
            self._fd = None
        created = not os.path.exists(self.path)
        if created:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        elif not self._repaired:
            self._cut_torn_line()
        self._repaired = True
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        opened = os.fstat(self._fd)
        self._file_id = (opened.st_dev, opened.st_ino)
        return self._fd, created

    def _torn(self) -> None:
        """A line was cut short: the path is opened again for the next one and its torn tail cut off first,
        so that the next line does not run on from the torn one (and get lost with it when read)."""
        if self._fd is not None:
            self._retired.append(self._fd)
        self._fd, self._repaired = None, False

    def _write_back(self, line: int) -> None:
        """Return once the first `line` lines written are on the disk: by this thread's fsync, or by one
        that began after the line was written (the others waiting meanwhile are covered by the next)."""
        with self._sync:
            if self._synced >= line:
                return
            with self._write:
                covered = self._written
                fd = self._fd
            if fd is not None:  # (None: none written by this object)
                os.fsync(fd)  # open until `remove`, which waits for the lines being appended
            self._synced = covered

    def _cut_torn_line(self) -> None:
        """Drop a last line without its newline (a write cut by a crash), so the next line starts clean."""
        with open(self.path, "r+b") as journal:
            data = journal.read()
            if data and not data.endswith(b"\n"):
                journal.truncate(data.rfind(b"\n") + 1)
                os.fsync(journal.fileno())

    def remove(self) -> None:
        """Delete the journal (its day's manifest is verified on the server); no line is being appended."""
        with self._write:
            for fd in [*self._retired, *([self._fd] if self._fd is not None else [])]:
                os.close(fd)
            self._fd, self._retired = None, []
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path + SENT_SUFFIX)


def pending_days(folder: str, today: str) -> list[str]:
    """The remote day folders whose journal in `folder` is pending (see the module docstring): each
    needs its manifest put, or read back, before the journal may go. Cheap: a listing and a stat each."""
    return [day for day, path in _journals(folder) if day.rsplit("/", 1)[-1] < today or not _sent_all(path)]


def unsent_days(folder: str) -> list[str]:
    """The remote day folders whose journal in `folder` holds lines the server's manifest lacks."""
    return [day for day, path in _journals(folder) if not _sent_all(path)]


def _journals(folder: str) -> list[tuple[str, str]]:
    try:
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [(unquote(name[: -len(SUFFIX)]), os.path.join(folder, name)) for name in names if name.endswith(SUFFIX)]


def _sent_all(path: str) -> bool:
    try:
        with open(path + SENT_SUFFIX) as mark:
            sent = int(mark.read() or "-1")
        return sent == os.stat(path).st_size
    except (OSError, ValueError):
        return False


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` (a short write, the disk filling up midway, is written on or raises)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
