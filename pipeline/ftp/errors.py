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

`map_exceptions` is the one place that turns what a block of FTP code raised into these kinds (as
httpcore's `map_exceptions` does for its backends): classify, drop a connection that is no longer
in step, raise the failure without the ftplib traceback chained to it.
"""

from __future__ import annotations

import ftplib
import ssl
from collections.abc import Callable

from pipeline.ftp.replies import first_line, reply_code
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
    "ExceptionMap",
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
    "map_exceptions",
    "reply_code",
    "scrub",
]


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


#: Raised by the station's side of a transfer, not by the server: passed through unmapped.
LOCAL_FAILURES = (LocalFileGone, LocalFileChanged)


class ExceptionMap:
    """Raise what the block raises as the `classify`d failure of `command`, `from None` (`map_exceptions`).

    `discard` (the session's "forget this connection") is called when the failure leaves the
    connection out of step (`session_usable` False). `lost`: any failure means the connection is
    gone (a data transfer cut midway): raised as `ConnectionLost`, and `discard` is always called.
    `secret` is masked in the message (the login steps). `LocalFileGone`/`LocalFileChanged`, and
    the exception types in `keep` (those the caller reads itself), pass through as they are.

    A class rather than a generator's context manager: every FTP command enters one (some seven per
    small file), and this costs less than half of what a generator's does.
    """

    __slots__ = ("command", "discard", "keep", "lost", "secret")

    def __init__(
        self,
        command: str,
        *,
        secret: str = "",
        discard: Callable[[], None] | None = None,
        lost: bool = False,
        keep: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.command = command
        self.secret = secret
        self.discard = discard
        self.lost = lost
        self.keep = keep

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: object) -> bool:
        if error is None or not isinstance(error, Exception) or isinstance(error, (*LOCAL_FAILURES, *self.keep)):
            return False  # nothing raised, or what passes through as it is
        failure = classify(error, command=self.command, secret=self.secret)
        if self.lost:
            failure = ConnectionLost(failure.reply, command=failure.command)
        if self.discard is not None and not failure.session_usable:
            self.discard()
        raise failure from None


#: The context manager every FTP step runs in (httpcore's `map_exceptions`, here a class: `ExceptionMap`).
map_exceptions = ExceptionMap
