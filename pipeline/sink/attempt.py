"""How an attempt ended, decided in one place: which failure means what for the job, and whether the
local file goes after a delivery.

`failure_of` is the table the workers' `except` clauses were: every failure kind of the transport
(`pipeline.transport.errors`) and of the local file maps to one `Outcome`, a reply line, and whether
the session is still usable. An exception it does not know is a bug, left to the worker's own handler.

`settle` is the delete-or-keep decision after a delivery the transport verified (or, with
`verify_size = false`, after the 226): nothing is removed unless the policy says so, a bare `.csv` is
kept (the outbox's rule `keeps_bare_csv`: its sensor still appends to it) unless it went up as its
day's file, and a file that changed since the attempt began is uploaded again. The outbox
(`pipeline.outbox.deletion`) does what is decided under its read leases: compare, then remove.
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.model import UploadJob
from pipeline.outbox.deletion import Removal, keeps_bare_csv, remove_uploaded
from pipeline.outbox.file_state import FileState, file_state
from pipeline.sink.model import Outcome
from pipeline.transport.errors import (
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TransientFailure,
)

GONE_REPLY = "the local file is gone"


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed attempt means: its outcome, the line its result carries, and whether to drop the session."""

    outcome: Outcome
    reply: str
    drop_session: bool = False


#: The first row whose kind the error is wins: (kind, outcome, drop the session).
FAILURES: tuple[tuple[type[BaseException], Outcome, bool], ...] = (
    (LocalFileGone, Outcome.GONE, False),  # vanished before or while it was sent: nothing to do
    (LocalFileChanged, Outcome.CHANGED, False),  # written to while it was sent: queued again at once
    (PermanentFailure, Outcome.PARKED, False),  # the server refuses this file: tried every retry_max
    (SessionFailure, Outcome.RETRY, True),  # the session is unusable (login, TLS): a new one retries
    (TransientFailure, Outcome.RETRY, False),  # a lost connection, a busy server: backoff
    (PermissionError, Outcome.PARKED, False),  # the station's file (or a folder on its way) is unreadable
    (OSError, Outcome.RETRY, False),  # reading the local file failed
)


def failure_of(error: BaseException, local_path: str) -> Failure | None:
    """The table's answer for `error` raised while `local_path` was attempted; None for an unforeseen error."""
    for kind, outcome, drop_session in FAILURES:
        if isinstance(error, kind):
            return Failure(outcome, _reply(error, local_path), drop_session)
    return None


def _reply(error: BaseException, local_path: str) -> str:
    if isinstance(error, LocalFileGone):
        return GONE_REPLY
    if isinstance(error, PermissionError):
        return unreadable(local_path, error)
    if isinstance(error, OSError):
        return f"local read failed: {error}"
    return str(error)


def unreadable(local_path: str, error: OSError) -> str:
    """The reply of a parked file that cannot be read (it is tried again when it changes)."""
    return f"cannot read {local_path}: {error.strerror or error}"


def settle(job: UploadJob, version: FileState, *, delete_after_upload: bool) -> Removal:
    """After a delivery of `job` read as `version`: remove the local file (and its companion), keep it, or
    report it changed (then it is uploaded again)."""
    if not delete_after_upload:
        now = file_state(job.local_path)
        return Removal(changed=now is not None and now != version)
    if keeps_bare_csv(job.local_path, day_file=job.day_file):
        return Removal()
    return remove_uploaded(job.local_path, version)
