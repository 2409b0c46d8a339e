"""One-way message channels between the parent and the sink process over plain pipes, without semaphores.

A `multiprocessing` queue guards its pipe with named semaphores, and every named semaphore made
under `spawn` starts multiprocessing's resource tracker, a third Python process (about 6.6 MB).
Here each pipe has one writing thread and one reading thread, so nothing needs a lock between
processes: `PipeSender` buffers what its callers put (they never block on a full pipe, as with a
queue's feeder thread) and writes it in order from its own thread; `read_into` reads messages until
the other end is gone (`read_all_into`, for the parent's reports, and `read_all_batches_into`, for the sink's
jobs, read whatever the pipe holds at once, several writes in one read when the writer is ahead).
A closed or broken pipe ends either thread quietly: what it carried is either still a file in the
outbox (jobs) or a report about one (results, logs, counts).

What the writer finds buffered at once goes as one `Batch` (one pickling, one write, one read on the
other side): a busy sink reports several messages per file (its result, log records, counts), and per-
message pickling and pipe calls were a good part of both processes' CPU per small file. Nothing else
waits to fill a batch: the writer sends whatever is there when it wakes (the reports' writer: at most
every `SPACING_SECONDS`), except that a `put_latest` snapshot alone (the sink's counts, which change a
few times per file) waits up to `LATER_SECONDS` for a message to ride with: counts are for display and
the backfill's pace, and they are still never behind a result (their producer runs when the batch is
written). A `direct` sender (the parent's jobs: one put per file) has the putting thread write a message itself
when nothing is buffered or being written and the pipe takes the whole write at once (its end is non-blocking):
a hand-off to the writing thread per job (a notify, a wake, a turn at the GIL for each side) cost the parent
more than the write. What the pipe does not take at once goes to the thread, and so does all that is put
after it until the thread has written it: the caller still never blocks on a full pipe, and the order stays.
Spaced too (the jobs), it writes directly only after a quiet spell: the rest of a burst goes through the
thread a few at a time, so that the reader (the sink's feeder) wakes once per spacing, not once per job.
Messages are pickled with `pickle` itself, not `Connection.send`'s `ForkingPickler`: that one
copies the whole copyreg dispatch table for every message (about 5 us each, more than pickling a log
record), and nothing sent here needs its reducers (no sockets, pipes or file descriptors travel these
pipes).
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger("beemon.sink")

#: Put on a sender to end its thread once everything before it is written (see `PipeSender.close`).
_END = object()
#: At most this many messages in one write (a bounded pickle).
BATCH_MAX = 256
#: How long a `put_latest` snapshot waits for other messages to go with it.
LATER_SECONDS = 0.05
#: The sink's reports are written at most this often: a message after a quiet spell goes at once, but
#: in a burst of small files (hundreds of results and log records a second) the writer sleeps out the
#: rest of this after each write, so one wake-up, pickling and write (and one read and wake-up in the
#: parent) carries several files' reports instead of each file's: a few milliseconds more, only under load.
SPACING_SECONDS = 0.004


class Batch(list[Any]):
    """Several messages sent as one; `receive` hands them back one by one, in order."""


class _Rest(bytes):
    """What the pipe did not take of a `direct` write: the thread writes it first, as it is."""


class _Later:
    """A place in the buffer where `PipeSender.put_latest`'s producer runs."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.produce: Callable[[], Any] | None = None  # taken from `_later` when the writer reaches this place


class PipeSender:
    """Messages put in any thread of this process, written to `connection` in order by one daemon thread.

    The thread owns the connection: it closes it when it ends (closing it from another thread
    while a write is under way could let that write reach whatever file reused the number).
    """

    def __init__(self, connection: Connection, name: str, *, spacing: float = 0.0, direct: bool = False) -> None:
        """`spacing`: at least this long between two writes (see `SPACING_SECONDS`); 0: each as soon as it can.
        `direct`: a put writes itself when it can do so at once (see the module docstring); the connection's
        end becomes non-blocking, and this sender must be its only writer. With `spacing` too, only a put that
        comes `spacing` after the last write does: what follows within that time goes in the thread's next write,
        all together (a burst of jobs wakes the reader once, not once per job)."""
        self.connection = connection
        self._name = name
        self._spacing = spacing
        self._sent_at = -spacing  # when the last write went (monotonic)
        self._buffer: deque[Any] = deque()
        self._ready = threading.Condition()
        self._later: dict[str, Callable[[], Any]] = {}  # key -> producer, for `put_latest`
        self._thread: threading.Thread | None = None
        self._closed = False
        self._urgent = 0  # buffered messages that are not `put_latest` places (the end included)
        self._later_since = 0.0  # when the oldest buffered `put_latest` place was put
        self._direct = direct
        self._writing = False  # the thread holds messages it took and has not finished writing (direct: order)
        self._fd = -1
        if direct:
            self._fd = connection.fileno()
            os.set_blocking(self._fd, False)
            self._writable = select.poll()  # (the thread waits on it when the pipe is full)
            self._writable.register(self._fd, select.POLLOUT)

    def put(self, message: Any) -> None:
        """Buffer `message` for the writing thread (started when first needed); never blocks on the pipe.

        A `direct` sender writes it here instead when nothing is ahead of it and the pipe takes it at once."""
        with self._ready:
            if self._closed:
                return
            if self._direct and not self._buffer and not self._writing:
                now = time.monotonic() if self._spacing else 0.0
                if now - self._sent_at >= self._spacing:
                    message = self._put_directly(message)
                    if message is None:
                        self._sent_at = now
                        return
            self._buffer.append(message)
            self._urgent += 1
            self._ready.notify()
            self._start()

    def _put_directly(self, message: Any) -> Any:
        """Write `message` now, under the lock (nothing else is writing); what is left for the thread, or None.

        Whatever fails here (the pickling, a reader gone) leaves the message to the thread, which says or
        finds the same (and ends with the pipe, closing this sender)."""
        try:
            data = _framed(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
            written = os.write(self._fd, data)
        except Exception:  # BlockingIOError (a full pipe) among them
            return message
        return None if written == len(data) else _Rest(data[written:])

    def put_latest(self, key: str, produce: Callable[[], Any]) -> None:
        """Send what `produce()` returns when the writer reaches this point: puts of the same `key` that come
        before the writer does collapse into one (a burst of count changes becomes one message with the last).
        Alone in the buffer, it waits up to `LATER_SECONDS` for other messages to go with it."""
        if key in self._later:  # waiting already (a change a file, mostly): its producer runs after this change
            return
        with self._ready:
            if key in self._later or self._closed:
                return
            if not self._later:
                self._later_since = time.monotonic()
            self._later[key] = produce
            self._buffer.append(_Later(key))
            if len(self._buffer) == 1:  # a writer asleep on an empty buffer now times the wait
                self._ready.notify()
            self._start()

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._write, name=self._name, daemon=True)
            self._thread.start()

    def close(self, timeout: float, *, discard: bool = False) -> None:
        """Write what is buffered (or drop it: `discard`), for at most `timeout` s, then close the connection.

        The wait is bounded: an exit never hangs on a full pipe whose reader stopped reading.
        """
        with self._ready:
            if self._closed:
                return
            self._closed = True
            if discard:
                self._buffer.clear()
                self._later.clear()
                self._urgent = 0
            self._buffer.append(_END)
            self._urgent += 1
            self._ready.notify()
            thread = self._thread
        if thread is None:
            self.connection.close()
        else:
            thread.join(timeout)

    def _take(self) -> tuple[list[Any], bool]:
        """Everything buffered now (at most `BATCH_MAX`), in order, and whether the end was reached."""
        taken: list[Any] = []
        with self._ready:
            self._writing = False  # (whatever it took before is written: a direct put may write again)
            while not self._urgent:
                if not self._buffer:
                    self._ready.wait()
                    continue
                left = self._later_since + LATER_SECONDS - time.monotonic()
                if left <= 0:
                    break
                self._ready.wait(left)
            if self._direct and self._spacing:
                self._sit_out_direct_write()
            while self._buffer and len(taken) < BATCH_MAX:
                message = self._buffer.popleft()
                if isinstance(message, _Later):
                    message.produce = self._later.pop(message.key)  # it runs below, outside the lock
                else:
                    self._urgent -= 1
                if message is _END:
                    return self._produced(taken), True
                taken.append(message)
            self._writing = bool(taken)
        return self._produced(taken), False

    def _sit_out_direct_write(self) -> None:
        """(Holding the lock.) Within `spacing` of a direct put's write, wait out the rest, the lock released:
        what is put meanwhile (buffered behind this, waking nobody) goes in the same write."""
        left = self._sent_at + self._spacing - time.monotonic()
        if left > 0:
            self._ready.release()
            try:
                time.sleep(left)
            finally:
                self._ready.acquire()

    def _produced(self, taken: list[Any]) -> list[Any]:
        """The messages, each `put_latest` producer run now: after its key left `_later` (a change from now on
        is sent after this one)."""
        return [message.produce() if isinstance(message, _Later) else message for message in taken]

    def _write(self) -> None:
        try:
            while True:
                self._space()
                messages, end = self._take()
                if messages and not self._send(messages):
                    return
                if self._spacing:
                    self._sent_at = time.monotonic()
                if end:
                    return
        finally:
            with self._ready:  # no put writes directly any more (the number may soon be another file's)
                self._closed = True
            self.connection.close()

    def _space(self) -> None:
        """Sleep out the rest of `spacing` since the last write, not waiting on the buffer: puts meanwhile
        wake nobody, and whatever they buffered goes in the next write."""
        left = self._sent_at + self._spacing - time.monotonic()
        if left > 0:
            time.sleep(left)

    def _send(self, messages: list[Any]) -> bool:
        """Write `messages` (a `Batch` when several); False when the reader is gone."""
        if type(messages[0]) is _Rest:  # the rest of a direct write goes first, as it is
            try:
                self._write_all(messages[0])
            except OSError:
                return False
            messages = messages[1:]
            if not messages:
                return True
        try:
            payload = pickle.dumps(messages[0] if len(messages) == 1 else Batch(messages), pickle.HIGHEST_PROTOCOL)
            if self._direct:
                self._write_all(_framed(payload))
            else:
                self.connection.send_bytes(payload)
        except OSError:  # the reader is gone: nothing to deliver to
            return False
        except Exception as error:  # one message that cannot be pickled must not silence the rest
            if len(messages) > 1:
                return all(self._send([message]) for message in messages)
            message = messages[0]
            if not (isinstance(message, tuple) and message[:1] == ("log",)):  # (a log record: no loop)
                log.error("could not send a %s through the pipe: %s", type(message).__name__, error)
        return True

    def _write_all(self, data: bytes) -> None:
        """Write `data` to the non-blocking end of a direct sender, waiting while the pipe is full."""
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except BlockingIOError:
                self._writable.poll()


def _framed(payload: bytes) -> bytes:
    """`payload` as `Connection.send_bytes` writes it: its length first (see `_LENGTH`)."""
    size = len(payload)
    if size > 0x7FFFFFFF:
        return _LENGTH.pack(-1) + _LONG_LENGTH.pack(size) + payload
    return _LENGTH.pack(size) + payload


def receive(connection: Connection) -> list[Any]:
    """The next messages from `connection` (one write of a `PipeSender`); raises as `Connection.recv` does."""
    return _unpacked(connection.recv_bytes())


def _unpacked(payload: bytes) -> list[Any]:
    """The messages of one write."""
    message = pickle.loads(payload)
    return message if type(message) is Batch else [message]


def read_into(connection: Connection, handle: Callable[[Any], bool]) -> None:
    """Hand each message from `connection` to `handle` until it returns False or the writing end is gone."""
    while True:
        try:
            messages = receive(connection)
        except (EOFError, OSError, ValueError):
            return
        for message in messages:
            if not handle(message):
                return


#: How much `read_all_into` asks the pipe for at once (what a Linux pipe holds by default).
READ_SIZE = 65536
#: `Connection.send_bytes`' length before each write: 4 bytes, big-endian; -1, then 8 bytes, past 2 GiB.
_LENGTH, _LONG_LENGTH = struct.Struct("!i"), struct.Struct("!Q")


def read_all_into(connection: Connection, handle: Callable[[Any], bool]) -> None:
    """`read_into` for a reader that reads its pipe to the end (the parent's reports: nothing comes after "end";
    the sink's jobs: nothing comes after the parent's end of the pipe).

    The writes are taken apart as `Connection.recv_bytes` frames them (`_LENGTH`, then the bytes), but
    what the pipe holds is taken with one `os.read`: several writes at once when the writer was ahead,
    where `recv_bytes` makes two reads and a `BytesIO` for every write. So it may read past the write
    whose message `handle` refuses: those messages are not passed on, nor left for anyone else.
    """

    def each(messages: list[Any]) -> bool:
        return all(handle(message) for message in messages)  # (stops at the first refused)

    read_all_batches_into(connection, each)


def read_all_batches_into(connection: Connection, handle: Callable[[list[Any]], bool]) -> None:
    """`read_all_into`, handing `handle` the messages of all the writes one `os.read` took at once (the sink's
    job feeders put them on the board together); it returns False to stop reading."""
    try:
        fd = connection.fileno()
    except OSError:
        return
    pending = b""
    while True:
        try:
            chunk = os.read(fd, READ_SIZE)
        except OSError:
            return
        if not chunk:  # the writer is gone (in the middle of a write too: as `recv_bytes`' EOFError or OSError)
            return
        data = pending + chunk if pending else chunk
        at, end = 0, len(data)
        taken: list[Any] = []
        broken = False
        while end - at >= _LENGTH.size:
            size, start = _LENGTH.unpack_from(data, at)[0], at + _LENGTH.size
            if size == -1:
                if end - start < _LONG_LENGTH.size:
                    break  # (its long length comes with the next read)
                size, start = _LONG_LENGTH.unpack_from(data, start)[0], start + _LONG_LENGTH.size
            if end - start >= size:
                payload, at = data[start : start + size], start + size
            else:  # a write longer than what came: the rest, read as it comes
                try:
                    payload, at = data[start:] + _read_exactly(fd, size - (end - start)), end
                except (EOFError, OSError):
                    broken = True
                    break
            try:
                taken += _unpacked(payload)
            except ValueError:  # as `read_into`
                broken = True
                break
        if (taken and not handle(taken)) or broken:  # (a broken write: what came whole before it, then the end)
            return
        pending = data[at:]


def _read_exactly(fd: int, size: int) -> bytes:
    """The next `size` bytes of `fd`; EOFError when it ends first."""
    parts = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)
