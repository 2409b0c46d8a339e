"""OutboxLock: only one uploader works an outbox at a time.

Two uploaders on one outbox send every file twice, and each resumes or renames the other's
temporary files: the server's final name can end up holding a cut copy. So `run`, `run --once`,
`demo` and `Uploader.start` take an `flock` on ``<outbox>/.beemon/lock`` first, and write their PID
into it; a second one fails at once with `OutboxBusy`, whose text names that PID (the command line
prints it and exits 2).

The lock belongs to the process that holds the file open: the kernel drops it when that process
exits in any way (SIGKILL and power cuts included), so a stale lock file never blocks a restart.
The descriptor is close-on-exec, so the spawned sink process never holds it: the lock lives
exactly as long as the uploader's main process.

A read-only outbox cannot hold the lock file: the lock is then taken on the outbox folder itself
(no PID can be written there; the message says so).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import time
from types import TracebackType
from typing import Any

#: The uploader's state folder inside the outbox: never uploaded, never watched (see `job_stream`).
STATE_FOLDER = ".beemon"
LOCK_NAME = "lock"
#: How long a second instance waits for the first one's PID to appear (it writes it right after locking).
PID_WAIT_SECONDS = 1.0
#: Errors that mean "this folder cannot be written": lock the outbox folder itself instead.
_READ_ONLY = frozenset({errno.EROFS, errno.EACCES, errno.EPERM})

log = logging.getLogger("beemon.outbox.lock")


class OutboxLockError(Exception):
    """The outbox cannot be locked (it is not a folder, or the lock cannot be taken); one line says why."""


class OutboxBusy(OutboxLockError):
    """Another uploader holds the outbox's lock; `pid` is its process id (None when it could not be read)."""

    def __init__(self, outbox: str, pid: int | None, lock_path: str) -> None:
        self.outbox = outbox
        self.pid = pid
        self.lock_path = lock_path
        who = f"PID {pid}" if pid is not None else "PID unknown"
        super().__init__(
            f"another beemon-uploader ({who}) is already working the outbox {outbox} (lock {lock_path}):"
            " only one may run per outbox; stop that one first, or give this one another local_output_directory"
        )


def lock_path_for(outbox: str) -> str:
    return os.path.join(os.path.abspath(outbox), STATE_FOLDER, LOCK_NAME)


class OutboxLock:
    """An exclusive, non-blocking `flock` on the outbox's lock file, held until `release` or process exit."""

    def __init__(self, outbox: str) -> None:
        self.outbox = os.path.abspath(outbox)
        self.path = lock_path_for(outbox)
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"OutboxLock({self.outbox!r}, {'held' if self.held else 'not held'})"

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutboxLock:
        """Take the lock and write this process's PID into it; `OutboxBusy` when another process holds it."""
        if self._fd is not None:
            return self
        fd, writable = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutboxBusy(self.outbox, self._holder_pid(), self.path if writable else self.outbox) from None
        except OSError as error:
            os.close(fd)
            raise OutboxLockError(
                f"cannot lock the outbox {self.outbox} ({error.strerror or error}): only one uploader may work"
                " an outbox, and this file system gives no locks; put the outbox on a local file system"
            ) from None
        self._fd = fd
        if writable:
            self.write_pid()
        return self

    def write_pid(self) -> None:
        """Put this process's PID in the lock file (again, in a child that inherited the lock)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):  # the lock holds without it; only the message would lack the PID
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Close the lock file (the kernel drops the lock); the file stays, holding a stale PID nobody reads."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> OutboxLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled for a spawned child (`Uploader.start`): the child gets a duplicate of the held descriptor.

        The duplicate shares the lock (flock belongs to the open file, not the descriptor), so the
        parent may close its own copy once the child started.
        """
        if self._fd is None:
            return (_unheld, (self.outbox,))
        from multiprocessing.reduction import DupFd

        return (_inherited, (self.outbox, DupFd(self._fd)))

    # --- internals

    def _open(self) -> tuple[int, bool]:
        """The descriptor to lock, and whether it is the lock file (False: the read-only outbox folder)."""
        if os.path.lexists(self.outbox) and not os.path.isdir(self.outbox):
            raise OutboxLockError(
                f"the outbox {self.outbox} is not a folder: set local_output_directory to the station's outbox folder"
            )
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644), True
        except OSError as error:
            if error.errno not in _READ_ONLY:
                raise OutboxLockError(
                    f"cannot create the lock file {self.path} ({error.strerror or error}): check the outbox's"
                    " permissions"
                ) from None
            try:
                # A read-only outbox: a lock file from earlier may be there to read; else lock the folder.
                return os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW), False
            except OSError:
                log.info("the outbox %s is read-only: locking the folder itself", self.outbox)
                return os.open(self.outbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), False

    def _holder_pid(self) -> int | None:
        deadline = time.monotonic() + PID_WAIT_SECONDS
        while True:
            try:
                with open(self.path, encoding="ascii", errors="replace") as handle:
                    text = handle.read().strip()
            except OSError:
                return None
            if text.isdigit():
                return int(text)
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)


def _unheld(outbox: str) -> OutboxLock:
    return OutboxLock(outbox)


def _inherited(outbox: str, dup: Any) -> OutboxLock:
    lock = OutboxLock(outbox)
    lock._fd = dup.detach()
    os.set_inheritable(lock._fd, False)
    return lock
