"""What went wrong in an FTP exchange, sorted by what the sink should do about it.

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


class FtpFailure(Exception):
    """Base of the sink's FTP errors; `reply` is the server's last reply line or the error text."""

    session_usable = False

    def __init__(self, reply: str, *, command: str = "") -> None:
        super().__init__(reply)
        self.reply = reply
        self.command = command

    def __str__(self) -> str:
        return f"{self.command}: {self.reply}" if self.command else self.reply


class TransientFailure(FtpFailure):
    """Retry this file later; the session may carry on when `session_usable`."""

    def __init__(self, reply: str, *, command: str = "", session_usable: bool = True) -> None:
        super().__init__(reply, command=command)
        self.session_usable = session_usable


class ConnectionLost(TransientFailure):
    """The connection cannot be trusted any more: close it, reconnect after a backoff."""

    def __init__(self, reply: str, *, command: str = "") -> None:
        super().__init__(reply, command=command, session_usable=False)


class TooManyConnections(ConnectionLost):
    """421 at connect or login: the server caps connections (per address or in total)."""


class PermanentFailure(FtpFailure):
    """The server refuses this file; retrying soon will not help."""

    session_usable = True


class TargetExists(PermanentFailure):
    """The final name holds a different file that this upload must not replace (see the sink's overwrite guard)."""


class SessionFailure(FtpFailure):
    """Login or TLS setup failed: configuration, credentials or certificates need a person."""


class LocalFileGone(Exception):
    """The local file vanished before or while it was read: nothing to upload, nothing to retry."""


class LocalFileChanged(Exception):
    """The local file changed size while it was being sent: upload it again from its new state."""


def reply_code(error: BaseException) -> int:
    """The three-digit code at the start of an ftplib error's reply, or 0."""
    text = str(error)[:3]
    return int(text) if text.isdigit() else 0


def scrub(text: str, secret: str) -> str:
    """`text` without `secret` in it (a server or library could echo what it was sent)."""
    return text.replace(secret, "***") if secret else text


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
