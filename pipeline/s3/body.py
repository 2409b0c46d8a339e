"""The body of one PUT or part: `length` bytes of a local file from `start`, seekable, throttled, abortable.

botocore reads a body more than once (SigV4 hashes the payload over plain HTTP, a retry sends it
again), so the reader seeks within its own window and never past it: a file that grows while it
is sent still gives exactly the bytes its checksum was computed over, or the server's BadDigest.
"""

from __future__ import annotations

import io
import threading
from typing import BinaryIO

from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.errors import ConnectionLost


class Window(io.RawIOBase):
    """A read-only view of `file[start:start + length]`."""

    def __init__(
        self,
        file: BinaryIO,
        start: int,
        length: int,
        *,
        throttle: TokenBucket | None = None,
        aborted: threading.Event,
    ) -> None:
        super().__init__()
        self._file, self._start, self._length = file, start, length
        self._position = 0
        self._throttle = throttle
        self._aborted = aborted

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._length}[whence]
        self._position = min(max(0, base + offset), self._length)
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._position
        want = left if size is None or size < 0 else min(size, left)
        if want <= 0:
            return b""
        if self._throttle is not None:
            want = min(want, self._throttle.chunk_size)
            self._throttle.acquire(want, wait=self._aborted.wait)
        if self._aborted.is_set():
            raise ConnectionLost("transfer aborted at the stop deadline")
        self._file.seek(self._start + self._position)
        data = self._file.read(want)
        self._position += len(data)
        return data

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
