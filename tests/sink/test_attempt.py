"""attempt.py: what each failure means for the job, and the one delete-or-keep decision after a delivery.

The decision runs on real files in a temporary outbox (leases, removals and all); the table on the
failure kinds the transport raises.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from operators.model import UploadJob
from pipeline.outbox.deletion import remove_local_file
from pipeline.outbox.file_state import file_state
from pipeline.sink.attempt import GONE_REPLY, failure_of, settle
from pipeline.sink.model import Outcome
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
)


@pytest.mark.parametrize(
    ("error", "outcome", "reply", "drop_session"),
    [
        (LocalFileGone("/out/a.wav"), Outcome.GONE, GONE_REPLY, False),
        (LocalFileChanged("a.wav grew from 10 to 20 B"), Outcome.CHANGED, "a.wav grew from 10 to 20 B", False),
        (PermanentFailure("553 not allowed", command="STOR"), Outcome.PARKED, "STOR: 553 not allowed", False),
        (TargetExists("refusing to overwrite x.wav"), Outcome.PARKED, "refusing to overwrite x.wav", False),
        (SessionFailure("530 Login incorrect"), Outcome.RETRY, "530 Login incorrect", True),
        (TransientFailure("451 try later"), Outcome.RETRY, "451 try later", False),
        (ConnectionLost("timed out"), Outcome.RETRY, "timed out", False),
        (TooManyConnections("421 too many"), Outcome.RETRY, "421 too many", False),
        (
            PermissionError(errno.EACCES, "Permission denied"),
            Outcome.PARKED,
            "cannot read /out/a.wav: Permission denied",
            False,
        ),
        (OSError(errno.EIO, "I/O error"), Outcome.RETRY, "local read failed: [Errno 5] I/O error", False),
    ],
)
def test_each_failure_kind_has_one_outcome(error, outcome, reply, drop_session):
    failure = failure_of(error, "/out/a.wav")
    assert failure is not None
    assert (failure.outcome, failure.reply, failure.drop_session) == (outcome, reply, drop_session)


@pytest.mark.parametrize("error", [ValueError("a bug"), TransportFailure("neither kind"), KeyError("x")])
def test_an_unforeseen_error_is_not_in_the_table(error):
    assert failure_of(error, "/out/a.wav") is None  # the worker reports it as a bug and retries


def put(path: Path, data: bytes = b"RIFF data") -> UploadJob:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return UploadJob(str(path), f"/up/{path.name}", st.st_size, st.st_mtime_ns)


def test_a_delivered_recording_is_removed_when_the_policy_says_so(tmp_path):
    job = put(tmp_path / "a.wav")
    removal = settle(job, file_state(job.local_path), delete_after_upload=True)
    assert (removal.removed, removal.kept, removal.changed) == ([job.local_path], "", False)
    assert not os.path.exists(job.local_path)


def test_without_delete_after_upload_the_file_stays_and_a_change_still_sends_it_again(tmp_path):
    job = put(tmp_path / "a.wav")
    version = file_state(job.local_path)
    assert settle(job, version, delete_after_upload=False).changed is False
    Path(job.local_path).write_bytes(b"RIFF data, and more")
    assert settle(job, version, delete_after_upload=False).changed is True
    assert os.path.exists(job.local_path)


def test_a_file_written_after_its_attempt_began_is_kept_and_sent_again(tmp_path):
    job = put(tmp_path / "a.wav")
    version = file_state(job.local_path)
    Path(job.local_path).write_bytes(b"RIFF data, and more")
    removal = settle(job, version, delete_after_upload=True)
    assert removal.changed and removal.removed == [] and os.path.exists(job.local_path)


def test_a_bare_csv_is_kept_unless_it_went_up_as_its_days_file(tmp_path):
    csv = put(tmp_path / "temp" / "2024-05-01" / "st@2024-05-01.csv", b"t,c\n1,20\n")
    version = file_state(csv.local_path)
    assert settle(csv, version, delete_after_upload=True).removed == []
    assert os.path.exists(csv.local_path)  # its sensor still appends to it
    assert remove_local_file(csv.local_path) == []  # the original API's removal asks the same rule
    day_file = UploadJob(csv.local_path, csv.remote_path, csv.size, csv.mtime_ns, day_file=True)
    assert settle(day_file, version, delete_after_upload=True).removed == [csv.local_path]
