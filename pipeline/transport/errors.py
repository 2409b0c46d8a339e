"""What went wrong in a delivery, sorted by what the sink should do about it: every transport's common words.

- `TransientFailure`: try this file again after a backoff (a temporary refusal, no space for now,
  a size mismatch). `session_usable` says whether the connection is still in step.
- `ConnectionLost`: the connection is gone or out of step: reconnect with backoff, then retry.
- `TooManyConnections`: the server refused another connection; the sink runs fewer for a while.
- `PermanentFailure`: the server refuses this file: park it. `TargetExists`, one of them: the
  final name holds another file that must not be overwritten.
- `SessionFailure`: the account or the TLS setup is wrong: nothing can be delivered until that
  changes; keep reconnecting slowly, log loudly.
- `LocalFileGone` / `LocalFileChanged`: the station's side moved under the delivery.

A transport (FTP today: `pipeline.ftp.errors.classify` maps ftplib's errors) raises only these,
so the sink's retry and deletion rules hold for every transport alike.
"""

from __future__ import annotations


class TransportFailure(Exception):
    """Base of the failures a transport reports; `reply` is the server's last reply line or the error text."""

    session_usable = False

    def __init__(self, reply: str, *, command: str = "") -> None:
        super().__init__(reply)
        self.reply = reply
        self.command = command

    def __str__(self) -> str:
        return f"{self.command}: {self.reply}" if self.command else self.reply


class TransientFailure(TransportFailure):
    """Retry this file later; the session may carry on when `session_usable`."""

    def __init__(self, reply: str, *, command: str = "", session_usable: bool = True) -> None:
        super().__init__(reply, command=command)
        self.session_usable = session_usable


class ConnectionLost(TransientFailure):
    """The connection cannot be trusted any more: close it, reconnect after a backoff."""

    def __init__(self, reply: str, *, command: str = "") -> None:
        super().__init__(reply, command=command, session_usable=False)


class HashMismatch(TransientFailure):
    """The server hashes the delivered copy differently from the bytes sent: the local file stays, sent again."""


class TooManyConnections(ConnectionLost):
    """421 at connect or login: the server caps connections (per address or in total)."""


class PermanentFailure(TransportFailure):
    """The server refuses this file; retrying soon will not help."""

    session_usable = True


class TargetExists(PermanentFailure):
    """The final name holds a different file that this upload must not replace (see the sink's overwrite guard)."""


class SessionFailure(TransportFailure):
    """Login or TLS setup failed: configuration, credentials or certificates need a person."""


class LocalFileGone(Exception):
    """The local file vanished before or while it was read: nothing to upload, nothing to retry."""


class LocalFileChanged(Exception):
    """The local file changed size while it was being sent: upload it again from its new state."""


def scrub(text: str, secret: str) -> str:
    """`text` without `secret` in it (a server or library could echo what it was sent)."""
    return text.replace(secret, "***") if secret else text
