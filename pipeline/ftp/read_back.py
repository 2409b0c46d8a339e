"""A file read back in the rename's flight: RETR goes out with RNFR, RNTO, SIZE and the data port's EPSV.

Used for the day's manifest (`small_files.put_small`), which is read back after its rename to check
that the server holds exactly what was put. The RETR cannot have its data connection before the
flight's EPSV is answered, so it is sent last in that flight and the data connection is opened once
the replies came; its bytes arrive in the same round trip. When they are as many as the server
just said the file holds (the flight's SIZE), the transfer's closing 226 is left for the next reply
read on the connection (`FtpClient.deferred_replies`): the bytes are what the caller compares, the
226 can tell nothing more, and a session that ends next (the end of `run --once`) does not wait for
it. Fewer bytes, or a refused RETR (a rename refused in the same flight: the target is not ours),
give no data, with every reply read: the connection stays in step and the caller reads it again
the usual way.
"""

from __future__ import annotations

import contextlib
import ftplib
import ssl

from pipeline.ftp.client import FtpClient
from pipeline.ftp.connection import Connection

#: refusals of the RETR that leave the connection in step (the caller reads the file the usual way)
_REFUSALS = (ftplib.error_perm, ftplib.error_temp, ftplib.error_reply)


def flight_with_retr(
    connection: Connection, lines: list[str], target: str, size: int
) -> tuple[list[str], bytes | None]:
    """Send `lines` (the last one the passive command) and `RETR target` in one write; returns the replies to
    `lines`, raw and in order, and the bytes read back (None: not read back, see the module docstring)."""
    client = connection.require()
    command = f"RETR {target}"
    with connection.mapped(lines[0]):
        client.send_lines([*lines, command])
        replies = [client.getmultiline() for _ in lines]
    with connection.mapped(command, keep=_REFUSALS):
        try:
            if not client.take_passive_reply(replies[-1]):  # no port: the RETR is refused (425, 503)
                client.getmultiline()
                return replies, None
            data = _read(client, size)
        except _REFUSALS:
            return replies, None
    return replies, data


def _read(client: FtpClient, size: int) -> bytes | None:
    """Open the data connection on the port just asked, read the opening reply and the bytes; see the module."""
    host, port = client.passive_ahead
    client.passive_ahead = None
    try:
        conn = client._data_connection(host, port)
    except OSError:
        client.read_opening(0)  # a refused RETR (its port closed before we came): raised as its reply
        raise
    with contextlib.closing(conn):
        client.read_opening(0)
        conn = client._secure_data(conn)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    data = b"".join(chunks)
    if len(data) == size:
        client.deferred_replies += 1
        return data
    client.voidresp()
    return None
