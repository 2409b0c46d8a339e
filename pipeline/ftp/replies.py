"""FTP replies read without a socket: codes, SIZE/MLST sizes, EPSV/PASV addresses, replies as ftplib errors.

Pure functions of the reply text, so that a reply read one at a time (`voidcmd`) and one read in a
pipelined flight (`FtpClient.batch`) are understood alike.
"""

from __future__ import annotations

import ftplib
import re

#: Reply codes meaning "this server does not know or allow that command".
UNSUPPORTED = frozenset({500, 501, 502, 504})
#: An EPSV refused with one of these: use PASV (522: "network protocol not supported").
EPSV_REFUSED = frozenset({*UNSUPPORTED, 522})

_MLST_SIZE = re.compile(r"(?:^|;)\s*size=(\d+)", re.IGNORECASE | re.MULTILINE)


def reply_code(reply: str | BaseException) -> int:
    """The three-digit code at the start of a reply (or of an ftplib error's text), or 0."""
    text = str(reply)[:3]
    return int(text) if text.isdigit() else 0


def first_line(text: str) -> str:
    """The first line of a (multi-line) reply or message; `text` itself when it is blank."""
    return text.strip().splitlines()[0] if text.strip() else text


def is_unsupported(reply: str | BaseException) -> bool:
    """Whether the reply says the server does not know or allow the command (500, 501, 502, 504)."""
    return reply_code(reply) in UNSUPPORTED


def reply_error(reply: str) -> ftplib.Error:
    """The ftplib exception `voidcmd` would have raised for `reply`."""
    line = reply.strip()
    if line[:1] == "4":
        return ftplib.error_temp(line)
    if line[:1] == "5":
        return ftplib.error_perm(line)
    return ftplib.error_reply(line)


def number_in_reply(reply: str) -> int | None:
    """The number after the code ("213 1234" -> 1234), None when there is none."""
    try:
        return int(reply.split()[1])
    except (IndexError, ValueError):
        return None


def size_in_reply(reply: str) -> int | None:
    """The size in a "213 <size>" reply to SIZE; None for any other reply or a malformed one."""
    return number_in_reply(reply) if reply_code(reply) == 213 else None


def mlst_size(reply: str) -> int | None:
    """The `size` fact of an MLST reply ("250-..." with "size=N;" among the facts), None without one."""
    match = _MLST_SIZE.search(reply)
    return int(match.group(1)) if match else None


def passive_address(reply: str, peer: tuple[str, int]) -> tuple[str, int] | None:
    """The data address of an EPSV (229) or PASV (227) reply, None for another reply.

    PASV's announced host is replaced by the control connection's `peer` (NAT'd servers announce
    private ones). Raises `ftplib.Error` for a malformed 229/227.
    """
    if reply.startswith("229"):
        return ftplib.parse229(reply, peer)
    if reply.startswith("227"):
        return peer[0], ftplib.parse227(reply)[1]
    return None
