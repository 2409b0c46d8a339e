"""A small file's STOR with its data sent before the 150: two round trips per file instead of three.

On a persistent session with pipelining the data port was asked for in the previous rename's flight,
so STOR, the data connection, the file's bytes and the end of the data can all go out at once; the
replies (the overwrite guard's SIZE, the 150, the 226) are read afterwards. The bytes wait in the
server's socket until it reads them, which it does only once it accepted the STOR.

Why it is safe, and where it is not used:

- Only whole files of at most `EARLY_SEND_MAX` bytes (no resume): that much fits in the windows
  of a fresh connection (Linux receivers offer 64 KiB), so the send returns even when the server
  never reads, and a refused STOR wastes at most that much of the link.
- A refused STOR (550, 553, 452...) is raised as its reply says, with the connection in step: the
  bytes sat in a data connection the server never read; the next transfer asks for a new port,
  which closes it (pyftpdlib, vsftpd and ProFTPD alike); a port the server closed before the
  connect arrived (ProFTPD, at times) is read as the refusal too (`FtpClient.start_transfer`).
  `progress.stored` turns True only after the 150: the `.part` holds this attempt's bytes from
  then on.
- A data connection the server cuts, a send that fails, a 421 or a 426: the transfer is lost as
  when the 150 came first (`ConnectionLost`, or the reply's failure); nothing is renamed.
- The overwrite guard is decided from its reply as before, only after the bytes went into the
  `.part`: a target it may not replace ends the transfer, and the `.part` is removed.
- Not under TLS (`FtpClient.can_send_early`): the data connection's handshake needs the server.
- pyftpdlib accepts data connections at once and drops one whose bytes arrive before it has read
  the STOR (vsftpd and ProFTPD accept only for a STOR they took). STOR is written before the data
  connection opens, so only a STOR held back (behind a slow command in its flight, or its segment
  lost and resent on the link) meets it: the 226 then never comes, the transfer times out
  (`ftp.timeout`) and is retried, the local file kept (tried with a stalled SIZE ahead of it).
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, BinaryIO

from pipeline.ftp.client import FtpClient
from pipeline.ftp.errors import FtpFailure, LocalFileChanged

if TYPE_CHECKING:
    from pipeline.ftp.store import Guard, Store

#: The largest file sent before the 150 (bytes).
EARLY_SEND_MAX = 64 * 1024


def fits(client: FtpClient, offset: int, size: int) -> bool:
    """Whether this transfer goes out whole before the 150 (see the module docstring)."""
    return offset == 0 and size <= EARLY_SEND_MAX and client.can_send_early()


def store(store: Store, local: BinaryIO, path: str, size: int, guard: Guard | None) -> tuple[int, int, str]:
    """STOR `local` (whole, `size` bytes) into `path`, its bytes sent before the 150; returns (0, sent, the 226)."""
    connection, command = store.connection, f"STOR {path}"
    client = connection.require()
    probe = store.features.probe_command if guard is not None else None
    if guard is not None and probe is None:
        guard.check(store.sizes.size(guard.target))
    ahead = [f"{probe} {guard.target}"] if guard is not None and probe is not None else []
    with connection.mapped(command):
        data = client.start_transfer(command, ahead)
    sent, failure = _push(store, client, data, local, size)
    store.waiting()  # the STOR, its bytes and the guard's probe are out: the caller's work overlaps their answers
    with connection.mapped(command):
        replies = client.read_opening(len(ahead))
    store.progress.stored = True  # the server opened `path` for this transfer: its bytes are ours
    if isinstance(failure, LocalFileChanged):
        connection.drain_reply()
        raise failure
    if failure is not None:
        with connection.mapped(command, lost=True):
            raise failure
    if guard is not None and probe is not None:
        store.check_guard(data, path, guard, probe, replies[0])
    with connection.mapped(command):
        reply = client.voidresp()
    store.progress.complete = sent == size
    return 0, sent, reply


def _push(
    store: Store, client: FtpClient, data: socket.socket, local: BinaryIO, size: int
) -> tuple[int, Exception | None]:
    """Send the whole file and close the data connection; a failure is returned, to be raised after the replies."""
    client.data_socket = data  # `abort` cuts it
    try:
        with data:
            return store.sender.send(data, local, 0, size), None
    except (OSError, FtpFailure, LocalFileChanged) as failure:  # FtpFailure: aborted at the stop deadline
        return 0, failure
    finally:
        client.data_socket = None
        with contextlib.suppress(OSError):
            data.close()
