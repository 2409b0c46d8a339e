"""What a backlog transfer leaves in the kernel: little, so that a live transfer never waits behind it.

Bytes handed to the kernel cannot be taken back. When a fresh recording starts, the backlog senders
pause (`bandwidth.LiveFirst`), but what their sockets already hold goes out all the same, sharing the
link with the fresh file: autotuned send buffers hold up to `net.ipv4.tcp_wmem`'s 4 MB per socket,
and on the tbf link of `tests/benchmarks/link.py` three backlog sockets held 0.8-1.7 MB not yet
sent when the fresh file was closed, up to 0.7 s of the link (docs/benchmarks.md, "The live file
first on a full link").

Two rules, both for backlog transfers only (a live one sends as fast as the kernel takes it):

- `limit_unsent`: TCP_NOTSENT_LOWAT bounds the bytes a socket holds that it has not sent yet
  (`BACKLOG_UNSENT_BYTES`). It does not cap the congestion window (bytes in flight), so a backlog
  alone still fills the link: the sender only refills the socket more often.
- `send_yielding`: a block is handed over in the pieces the kernel takes (a socket with a timeout
  takes what fits and returns), with the pause asked between them, so a backlog sender stops within
  a piece of the bound rather than at the end of its block (`LIVE_FIRST_BLOCK`).

Where a platform has no TCP_NOTSENT_LOWAT (it is Linux's and macOS's), `limit_unsent` does nothing.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

from pipeline.transport.errors import ConnectionLost

#: A backlog socket's unsent bytes at most (the kernel adds up to one segment's worth). The sender is woken
#: to refill it once it holds less than half of it: 64 KiB, some 80 ms of a 20 Mbit/s link shared by three
#: transfers, 26 ms for one alone, so a sender held up by a busy CPU rarely lets its socket run dry. On the
#: tbf link the fresh file waited behind 0.3-0.4 MB of backlog (1.0-1.5 MB before); 64 KiB took that to
#: 0.2-0.3 MB but cost link utilisation when the machine was busy (docs/benchmarks.md).
BACKLOG_UNSENT_BYTES = 128 * 1024
#: The option's number where the platform has it (the socket module names it on Linux and macOS).
TCP_NOTSENT_LOWAT: int | None = getattr(socket, "TCP_NOTSENT_LOWAT", None)


def limit_unsent(sock: socket.socket, backlog: bool) -> None:
    """Bound `sock`'s unsent bytes for a backlog transfer; lift the bound for a live one (0: the system's default).

    A socket that cannot take the option (not TCP, another platform) is left as it is.
    """
    if TCP_NOTSENT_LOWAT is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, BACKLOG_UNSENT_BYTES if backlog else 0)


def unsent_limit(sock: socket.socket) -> int | None:
    """The bound `limit_unsent` set on `sock` (0: none, the system's default); None where it cannot be read."""
    if TCP_NOTSENT_LOWAT is None:
        return None
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT)
    except OSError:
        return None


def send_yielding(sock: socket.socket, data: memoryview, hold: Callable[[], bool]) -> None:
    """`sock.sendall(data)`, asking `hold()` between the pieces the kernel takes; `hold` returning True
    (an abort) ends the send with `ConnectionLost`."""
    view = data
    while view:
        taken = sock.send(view)
        view = view[taken:]
        if view and hold():
            raise ConnectionLost("transfer aborted at the stop deadline")
