"""What went wrong in an FTP exchange: ftplib's errors mapped to the transports' failure kinds.

The kinds themselves live in `pipeline.transport.errors`; this module is the FTP side of the mapping.

- `TransientFailure`: try this file again after a backoff (4xx replies, 552 "no space", a size
  mismatch). `session_usable` says whether the control connection is still in step.
- `ConnectionLost`: the connection is gone or out of step (socket errors, timeouts, 421, a reply
  the protocol did not allow): reconnect with backoff, then retry the file.
- `TooManyConnections`: 421 before or at login; the sink runs fewer sessions for a while.
- `PermanentFailure`: the server refuses this file (550/553 on STOR, a refused rename): park it.
  `TargetExists`, one of them: the final name holds another file that must not be overwritten.
- `SessionFailure`: the account or the TLS setup is wrong (530 at login, a certificate that does
  not verify): nothing can be uploaded until that changes; keep reconnecting slowly, log loudly.

Every message is the server's reply line or the local error's text; for the login steps, with the
password masked (`classify`'s `secret`), since a server may echo what it was sent.
"""

from __future__ import annotations

import ftplib
import ssl

from pipeline.transport.errors import (
    ConnectionLost,
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TargetExists,
    TooManyConnections,
    TransientFailure,
    TransportFailure,
    scrub,
)

#: The FTP code's name for the transports' common failure base.
FtpFailure = TransportFailure

__all__ = [
    "ConnectionLost",
    "FtpFailure",
    "LocalFileChanged",
    "LocalFileGone",
    "PermanentFailure",
    "SessionFailure",
    "TargetExists",
    "TooManyConnections",
    "TransientFailure",
    "TransportFailure",
    "classify",
    "first_line",
    "reply_code",
    "scrub",
]


def reply_code(error: BaseException) -> int:
    """The three-digit code at the start of an ftplib error's reply, or 0."""
    text = str(error)[:3]
    return int(text) if text.isdigit() else 0


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def classify(error: BaseException, *, command: str = "", secret: str = "") -> FtpFailure:
    """Map an ftplib/socket/ssl exception raised by `command` to the sink's failure kinds."""
    if isinstance(error, FtpFailure):
        return error
    text = scrub(first_line(str(error)) or type(error).__name__, secret)
    verb = command.split(" ", 1)[0].upper()
    if isinstance(error, ssl.SSLCertVerificationError):
        reason = getattr(error, "verify_message", None) or text
        return SessionFailure(f"TLS certificate verification failed: {reason}", command=verb)
    if isinstance(error, ftplib.error_temp):
        code = reply_code(error)
        if code == 421:
            if verb in ("CONNECT", "USER", "PASS", "AUTH"):
                return TooManyConnections(text, command=verb)
            return ConnectionLost(text, command=verb)
        return TransientFailure(text, command=verb)
    if isinstance(error, ftplib.error_perm):
        code = reply_code(error)
        if code == 530 or (verb in ("USER", "PASS", "AUTH", "PBSZ", "PROT") and code >= 500):
            return SessionFailure(text, command=verb)
        if code == 552:  # "exceeded storage allocation": space may come back
            return TransientFailure(text, command=verb)
        return PermanentFailure(text, command=verb)
    if isinstance(error, ValueError):  # ftplib refuses a path with a line break in it
        return PermanentFailure(text, command=verb)
    if isinstance(error, ftplib.Error | OSError | EOFError):
        return ConnectionLost(text, command=verb)
    return ConnectionLost(f"{type(error).__name__}: {text}", command=verb)
