"""`Departures`: the moment the last of N files left a folder, heard from the kernel, not polled.

A throughput row stops its clock when the last file is on the server and gone from the outbox. Polling
both folders every 10 ms listed 2,000 names twice per poll: about a tenth of a core, taken from the two
cores the uploader and the server share, while lftp's clock (its own exit) costs nothing. inotify tells
the bench of each local delete (`IN_DELETE`, or `IN_MOVED_FROM` for a file moved away) as it happens,
read in batches; the folders are listed once at the end, to check what the count said. The uploader
deletes a file only once the server holds a verified copy, so the last local delete is the last delivery.
If the kernel's queue overflows (`IN_Q_OVERFLOW`), the count is unknown: the wait falls back to polling.
The standard library has no inotify binding, so libc's three calls are used through `ctypes`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
import time
from collections.abc import Iterable
from pathlib import Path

IN_MOVED_FROM = 0x00000040
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")  # wd, mask, cookie, len (then `len` bytes of name)


class Departures:
    """Counts the entries that leave `folder` from `__enter__` on (a context manager: the watch is closed); with
    `names`, only those (anything else the folder loses does not stop the clock early)."""

    def __init__(self, folder: Path, names: Iterable[str] | None = None) -> None:
        self.folder = folder
        self._names = None if names is None else {os.fsencode(name) for name in names}
        self.gone = 0
        self.overflowed = False
        self._fd = -1

    def __enter__(self) -> Departures:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if libc.inotify_add_watch(fd, os.fsencode(self.folder), IN_DELETE | IN_MOVED_FROM) < 0:
            os.close(fd)
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {self.folder}")
        self._fd = fd
        return self

    def __exit__(self, *_: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def wait(self, count: int, timeout: float) -> bool:
        """Block until `count` entries have left (True), the queue overflowed or `timeout` s passed (False)."""
        deadline = time.monotonic() + timeout
        while self.gone < count and not self.overflowed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self._fd], [], [], left)
            if ready:
                self._read()
        return not self.overflowed

    def _read(self) -> None:
        try:
            buffer = os.read(self._fd, 1 << 16)
        except BlockingIOError:
            return
        offset = 0
        while offset < len(buffer):
            _, mask, _, length = _EVENT.unpack_from(buffer, offset)
            start, offset = offset + _EVENT.size, offset + _EVENT.size + length
            if mask & IN_Q_OVERFLOW:
                self.overflowed = True
            elif mask & (IN_DELETE | IN_MOVED_FROM) and (
                self._names is None or buffer[start:offset].rstrip(b"\0") in self._names
            ):
                self.gone += 1
