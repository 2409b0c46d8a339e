"""What a local file is right now, and whether some process still has it open for writing.

Shared by the stream (is a file finished?) and the sink (may an uploaded file be deleted?).
`FileState` names one version of a file: size and mtime tell most changes, the inode tells a file
replaced under the same name, and the ctime tells a write that kept size and mtime (a writer can
set the mtime back). The kernel knows whether a file is open for writing: it refuses a read lease
on such a file, and while we hold one, an open for writing waits for us (`held_for_reading`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat as stat_module
from types import TracebackType
from typing import NamedTuple


class FileState(NamedTuple):
    """One version of a file: (size, mtime_ns, inode, ctime_ns)."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileState:
        # (the tuple made directly: the NamedTuple's own __new__ is one Python call more, twice per delivered file)
        return _new_tuple(cls, (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))


_new_tuple = tuple.__new__


def file_state(path: str) -> FileState | None:
    """The `FileState` of `path` now (symlinks followed), or None when it does not exist."""
    try:
        return FileState.of(os.stat(path))
    except FileNotFoundError:
        return None


def regular_file_stat(path: str) -> os.stat_result | None:
    """The file's `lstat`, or None if it is gone or not a regular file (a symlink is never followed)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat_module.S_ISREG(st.st_mode) else None


class Held(NamedTuple):
    """A file open for reading under a read lease: its descriptor and its `fstat`."""

    fd: int
    stat: os.stat_result


#: Whether this process ignores SIGIO (`ignore_lease_breaks`): then a lease needs no signal of its own.
_sigio_ignored = False


def ignore_lease_breaks() -> None:
    """Ignore SIGIO in this process (call from its main thread): the signal a broken lease sends by default, which
    would end it. A lease taken afterwards spares the `F_SETSIG` call that sends SIGURG instead (one system call
    per delivered file in the sink process, whose threads wait on neither signal)."""
    global _sigio_ignored
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    _sigio_ignored = True


def held_for_reading(path: str) -> _Lease:
    """Open `path` and hold a read lease on it for a `with` block; it gives None while a process has it open for
    writing.

    While the lease is held no process can open the file for writing (its open waits until the
    block ends), so what the block checks stays true until it is done. The lease's break signal is
    SIGURG (ignored by default) rather than SIGIO, which would end the process, unless the process ignores
    SIGIO (`ignore_lease_breaks`). Where leases are
    unsupported or not permitted (a file of another owner), the file is given without one.
    Entering raises FileNotFoundError when the file is gone, OSError when it cannot be opened (a symlink).
    """
    return _Lease(path)


def _open_for_lease(path: str) -> int:
    """A descriptor to take a read lease through (never through a symlink, never waiting on a FIFO)."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)


def _leased(fd: int) -> bool:
    """Take a read lease on `fd`'s file, broken by SIGURG (by SIGIO where this process ignores it:
    `ignore_lease_breaks`); False while some process has it open for writing.

    Where leases are unsupported or not permitted, True: the file goes on without one."""
    try:
        if not _sigio_ignored:
            fcntl.fcntl(fd, fcntl.F_SETSIG, signal.SIGURG)
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as error:
        return error.errno != errno.EAGAIN
    return True


class _Lease:
    """`held_for_reading`'s block (a class, not a generator: it runs once per delivered file, and a generator's
    context manager costs several Python calls more)."""

    __slots__ = ("_fd", "_path")

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = -1

    def __enter__(self) -> Held | None:
        fd = self._fd = _open_for_lease(self._path)
        try:
            if not _leased(fd):
                return None
            return _new_tuple(Held, (fd, os.fstat(fd)))
        except BaseException:
            self._close()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._close()  # drops the lease with the last descriptor of its open file (no F_UNLCK call per file)

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def finished_file_stat(path: str) -> os.stat_result | None:
    """`regular_file_stat`, or None while some process has the file open for writing.

    Events cannot tell a pause in the writing from the end of it when inotify saw only Created
    (a file written into a folder made a moment before, whose watch came late). The kernel can
    (see `held_for_reading`; the lease is dropped at once). Where leases are unsupported or not
    permitted, the file counts as finished.
    """
    st = regular_file_stat(path)
    if st is None:
        return None
    # (`held_for_reading` without its `fstat`: the answer is the `lstat`, and this runs for every file)
    try:
        fd = _open_for_lease(path)
    except FileNotFoundError:
        return None
    except OSError:
        return st  # unreadable: let the sink say so
    try:
        return st if _leased(fd) else None
    finally:
        os.close(fd)  # drops the lease with it
