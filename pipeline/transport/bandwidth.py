"""One token bucket shared by every upload session of the sink: the total rate stays under the limit.

A sender asks for the bytes of its next chunk before sending it. The bucket lends: it subtracts the
chunk even when that leaves it in debt and tells the caller how long to sleep the debt off, so
concurrent senders queue up fairly without a polling loop, and the long-run rate is the limit.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from pipeline.transport.unsent import limit_unsent, send_yielding

#: The bucket holds this much time's worth of bytes: short bursts are allowed, long ones are not.
BURST_SECONDS = 0.25
MIN_BURST_BYTES = 4096


class TokenBucket:
    """`rate` bytes per second; `capacity` the largest burst (defaults to a quarter second's worth)."""

    def __init__(self, rate: float, capacity: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate}")
        self.rate = float(rate)
        self.capacity = float(capacity if capacity is not None else max(rate * BURST_SECONDS, MIN_BURST_BYTES))
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._lock = threading.Lock()

    @property
    def chunk_size(self) -> int:
        """The size of chunk a sender should ask for: at most one burst, so the rate stays smooth."""
        return max(1, int(self.capacity))

    def reserve(self, count: int) -> float:
        """Take `count` bytes' worth of tokens; return the seconds to wait before sending them."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= count
            return -self._tokens / self.rate if self._tokens < 0 else 0.0

    def refund(self, count: int) -> None:
        """Give back tokens reserved for bytes that will not be sent now (at most a full bucket)."""
        with self._lock:
            self._tokens = min(self.capacity, self._tokens + count)

    def acquire(self, count: int, wait: Callable[[float], object] = time.sleep) -> None:
        """Block until `count` bytes may be sent. `wait` may be an event's wait, to be interruptible."""
        delay = self.reserve(count)
        if delay > 0:
            wait(delay)

    def prepare(self, sock: socket.socket) -> None:
        """Nothing: a bucket alone leaves sockets as they are (a session's `SessionThrottle` does not)."""

    def sendall(self, sock: socket.socket, data: memoryview, wait: Callable[[float], object] = time.sleep) -> None:
        """Hand `data` to `sock` (after `acquire`): all of it at once."""
        sock.sendall(data)


#: While a live transfer runs, a backlog sender looks again this often whether it may go on.
PAUSE_STEP_SECONDS = 0.02
#: The block a sender sends between two looks: small enough that a backlog transfer yields within a
#: fraction of a second on a slow link, large enough that a fast one costs no throughput (sendfile).
LIVE_FIRST_BLOCK = 256 * 1024


class LiveFirst:
    """Backlog transfers yield the link to live ones: while a live transfer is in flight, every backlog
    sender pauses between blocks, so the fresh recording gets the whole link instead of a share of it.

    With no live transfer, backlog senders only pass through the shared bucket (if any): their
    throughput is unchanged.
    """

    def __init__(self, bucket: TokenBucket | None = None) -> None:
        self.bucket = bucket
        self._live = 0
        self._lock = threading.Lock()

    @property
    def live_in_flight(self) -> bool:
        return self._live > 0

    def live_started(self) -> None:
        with self._lock:
            self._live += 1

    def live_ended(self) -> None:
        with self._lock:
            self._live -= 1

    def for_session(self) -> SessionThrottle:
        """The throttle one session sends through (it is told whether its current transfer is backlog)."""
        return SessionThrottle(self)


class SessionThrottle:
    """One session's view of `LiveFirst`: the `TokenBucket` interface the FTP session sends through.

    A backlog transfer also keeps few bytes in the kernel (`pipeline.transport.unsent`): its socket's
    unsent bytes are bounded (`prepare`), and it hands a block over in the pieces the kernel takes,
    pausing between them (`sendall`), so that a live transfer that starts finds little ahead of it.
    """

    def __init__(self, gate: LiveFirst) -> None:
        self.gate = gate
        #: Set by the sink's worker before each transfer: True while it sends a backlog file.
        self.backlog = False

    @property
    def capped(self) -> bool:
        """Whether a bandwidth cap is in force (a shared `TokenBucket`); without one only live-first pauses."""
        return self.gate.bucket is not None

    @property
    def chunk_size(self) -> int:
        bucket = self.gate.bucket
        return LIVE_FIRST_BLOCK if bucket is None else min(LIVE_FIRST_BLOCK, bucket.chunk_size)

    def acquire(self, count: int, wait: Callable[[float], object] = time.sleep) -> None:
        """Take `count` bytes from the shared bucket, if there is one; `wait` returning True (an abort) ends any wait.

        A backlog sender pauses while a live transfer runs, and gives back what it reserved if one starts
        while it waits its turn; a live sender takes tokens only once they are there, so it never queues
        behind the backlog's debt: the bucket serves the live transfer first.
        """
        bucket = self.gate.bucket
        if not self.backlog:
            if bucket is not None:
                self._take_when_there(bucket, count, wait)
            return
        while True:
            if self._hold(wait):
                return
            if bucket is None:
                return
            delay = bucket.reserve(count)
            until = time.monotonic() + delay
            while delay > 0 and not self.gate.live_in_flight:
                if wait(min(delay, PAUSE_STEP_SECONDS)):
                    return
                delay = until - time.monotonic()
            if delay <= 0:
                return
            bucket.refund(count)  # a live transfer started: it gets these tokens

    def prepare(self, sock: socket.socket) -> None:
        """`sock` is about to carry this session's transfer: its unsent bytes bounded if backlog, else unbounded."""
        limit_unsent(sock, self.backlog)

    def sendall(self, sock: socket.socket, data: memoryview, wait: Callable[[float], object] = time.sleep) -> None:
        """Hand `data` to `sock` (after `acquire`): a backlog sender in the kernel's pieces, pausing between them
        while a live transfer runs (`wait` returning True, an abort, ends it with `ConnectionLost`)."""
        if not self.backlog:
            sock.sendall(data)
            return
        send_yielding(sock, data, lambda: self._hold(wait))

    def _hold(self, wait: Callable[[float], object]) -> bool:
        """Wait while a live transfer is in flight; True when `wait` says to stop (an abort)."""
        while self.gate.live_in_flight:
            if wait(PAUSE_STEP_SECONDS):
                return True
        return False

    @staticmethod
    def _take_when_there(bucket: TokenBucket, count: int, wait: Callable[[float], object]) -> None:
        """Look once whether the tokens are there; if not, let paused backlog senders give theirs back
        (one pause step), then queue for them as every sender does."""
        delay = bucket.reserve(count)
        if delay <= 0:
            return
        bucket.refund(count)
        if not wait(PAUSE_STEP_SECONDS):
            bucket.acquire(count, wait)
