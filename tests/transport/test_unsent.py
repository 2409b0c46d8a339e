"""A backlog sender keeps few bytes in the kernel and stops within its block when a live transfer starts.

Real TCP connections on loopback; the receiving end reads slowly into a small buffer, as a link
that the sender outpaces: what the sender hands over then waits in its own socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pipeline.transport.bandwidth import LiveFirst
from pipeline.transport.errors import ConnectionLost
from pipeline.transport.unsent import BACKLOG_UNSENT_BYTES, TCP_NOTSENT_LOWAT, unsent_limit

pytestmark = pytest.mark.skipif(TCP_NOTSENT_LOWAT is None, reason="this platform has no TCP_NOTSENT_LOWAT")

MIB = 1 << 20
RECEIVE_BUFFER = 64 * 1024


@contextlib.contextmanager
def connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """(sending end with a timeout, as ftplib's data sockets have; receiving end with a small buffer)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sender = socket.create_connection(listener.getsockname(), timeout=10)
        receiver, _ = listener.accept()
    with sender, receiver:
        yield sender, receiver


def read_for(sock: socket.socket, seconds: float, *, at_most: int | None = None) -> int:
    """Read what arrives for `seconds` (or until `at_most` bytes), slowly; the byte count."""
    sock.settimeout(0.05)
    got, end = 0, time.monotonic() + seconds
    while time.monotonic() < end and (at_most is None or got < at_most):
        try:
            data = sock.recv(16 * 1024)
        except TimeoutError:
            continue
        if not data:
            break
        got += len(data)
        time.sleep(0.002)
    return got


def test_a_backlog_socket_is_bounded_and_the_bound_is_lifted_for_a_live_transfer_on_the_same_socket():
    gate = LiveFirst()
    throttle = gate.for_session()
    with connection() as (sender, _):
        assert unsent_limit(sender) == 0  # the system's default: no bound
        throttle.backlog = True
        throttle.prepare(sender)
        assert unsent_limit(sender) == BACKLOG_UNSENT_BYTES
        throttle.backlog = False  # a persistent connection (SFTP) now carries a live file
        throttle.prepare(sender)
        assert unsent_limit(sender) == 0


def test_a_backlog_sender_stops_within_its_block_once_a_live_transfer_starts_and_finishes_it_after():
    gate = LiveFirst()
    throttle = gate.for_session()
    throttle.backlog = True
    block = memoryview(bytes(4 * MIB))  # one block, far more than the kernel holds
    with connection() as (sender, receiver):
        throttle.prepare(sender)
        sending = threading.Thread(target=throttle.sendall, args=(sender, block))
        sending.start()
        before = read_for(receiver, 10, at_most=MIB)  # the block well under way
        gate.live_started()
        during = read_for(receiver, 0.6)  # what was already in the kernel, and nothing more
        gate.live_ended()
        after = read_for(receiver, 30, at_most=4 * MIB - before - during)
        sending.join(10)
    # In the kernel when the live transfer started: the unsent bound (plus a segment), the receiver's
    # window, and the one piece the sender may have been handing over at that instant.
    assert during < 4 * BACKLOG_UNSENT_BYTES + 2 * RECEIVE_BUFFER, during
    assert before + during + after == 4 * MIB and not sending.is_alive()


def test_a_live_sender_hands_its_block_over_whole():
    gate = LiveFirst()
    throttle = gate.for_session()
    gate.live_started()  # its own transfer: it never pauses for itself
    with connection() as (sender, receiver):
        throttle.prepare(sender)
        sending = threading.Thread(target=throttle.sendall, args=(sender, memoryview(bytes(2 * MIB))))
        sending.start()
        assert read_for(receiver, 30, at_most=2 * MIB) == 2 * MIB
        sending.join(10)


def test_a_paused_backlog_sender_ends_at_an_abort():
    gate = LiveFirst()
    throttle = gate.for_session()
    throttle.backlog = True
    aborted = threading.Event()
    failures: list[BaseException] = []

    def send() -> None:
        try:
            throttle.sendall(sender, memoryview(bytes(4 * MIB)), aborted.wait)
        except ConnectionLost as failure:
            failures.append(failure)

    with connection() as (sender, receiver):
        throttle.prepare(sender)
        gate.live_started()
        sending = threading.Thread(target=send)
        sending.start()
        read_for(receiver, 0.3)
        aborted.set()
        sending.join(5)
    assert not sending.is_alive() and len(failures) == 1
