"""Whether a control connection opened ahead of its login is still waiting for it (`Connection.open_ahead`).

A server that timed the waiting connection out has sent a 421 or hung up; either makes the socket
readable. Over TLS 1.3 the server's session tickets, sent just after the handshake, make it readable
too, without a byte of the server's: those are taken in without blocking, so that the connection
opened ahead is the one logged in on (a server capping connections per address counts a dropped
one until it noticed, and answered the next with 421).
"""

from __future__ import annotations

import contextlib
import select
import ssl

from pipeline.ftp.client import FtpClient


def still_quiet(client: FtpClient) -> bool:
    """Whether a connection opened ahead is still waiting for its login: nothing to read (a server that
    timed it out has sent a 421 or hung up; either makes it readable)."""
    sock = client.sock
    if sock is None or client.buffered:  # a reply (a 421) read in with the welcome
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    if readable and isinstance(sock, ssl.SSLSocket):
        return _only_tls_records(sock)
    return not readable


def _only_tls_records(sock: ssl.SSLSocket) -> bool:
    """Whether what made a TLS socket readable was TLS's own (TLS 1.3 session tickets, sent after the handshake),
    nothing of the server's: read without blocking, they are taken in and no byte of the server's is there."""
    timeout = sock.gettimeout()
    try:
        sock.setblocking(False)
        sock.recv(1)  # a byte (a 421) or the end: not quiet, and the connection is dropped anyway
    except ssl.SSLWantReadError:
        return True
    except (OSError, ValueError):
        return False
    finally:
        with contextlib.suppress(OSError):
            sock.settimeout(timeout)
    return False
