"""FTP errors: classifying replies and socket/TLS errors into the failure kinds the sink acts on, and
map_exceptions, the one place where what a block of FTP code raised becomes such a kind."""

from __future__ import annotations

import ftplib
import socket
import ssl

import pytest

from pipeline.ftp.errors import (
    ConnectionLost,
    LocalFileChanged,
    PermanentFailure,
    SessionFailure,
    TooManyConnections,
    TransientFailure,
    classify,
    map_exceptions,
)


@pytest.mark.parametrize(
    ("error", "command", "kind", "usable"),
    [
        (ftplib.error_temp("421 Too many connections"), "PASS", TooManyConnections, False),
        (ftplib.error_temp("421 Service closing"), "STOR /a", ConnectionLost, False),
        (ftplib.error_temp("452 No space"), "STOR /a", TransientFailure, True),
        (ftplib.error_temp("450 Busy"), "RNFR /a", TransientFailure, True),
        (ftplib.error_perm("552 Exceeded storage allocation"), "STOR /a", TransientFailure, True),
        (ftplib.error_perm("550 Permission denied"), "STOR /a", PermanentFailure, True),
        (ftplib.error_perm("553 Not allowed"), "STOR /a", PermanentFailure, True),
        (ftplib.error_perm("530 Login incorrect"), "USER", SessionFailure, False),
        (ftplib.error_reply("200 unexpected"), "STOR /a", ConnectionLost, False),
        (TimeoutError("timed out"), "SIZE /a", ConnectionLost, False),
        (ConnectionResetError(104, "reset"), "STOR /a", ConnectionLost, False),
        (EOFError(), "NOOP", ConnectionLost, False),
        (ssl.SSLCertVerificationError(1, "bad cert"), "AUTH", SessionFailure, False),
        (socket.gaierror(-2, "Name or service not known"), "CONNECT", ConnectionLost, False),
    ],
)
def test_classify(error, command, kind, usable):
    failure = classify(error, command=command)
    assert type(failure) is kind
    assert failure.session_usable is usable
    assert failure.command == command.split()[0]


def test_classify_scrubs_the_secret():
    failure = classify(ftplib.error_perm("530 user u pass s3cr3t refused"), command="PASS", secret="s3cr3t")
    assert "s3cr3t" not in str(failure) and "***" in str(failure)


def test_a_refusal_is_classified_and_a_usable_connection_is_kept():
    dropped = []
    with pytest.raises(PermanentFailure) as caught, map_exceptions("STOR /a.wav", discard=lambda: dropped.append(1)):
        raise ftplib.error_perm("553 Could not create file.")
    assert (caught.value.command, caught.value.reply) == ("STOR", "553 Could not create file.")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # raised `from None`
    assert dropped == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ftplib.error_temp("421 Service not available."), ConnectionLost),
        (TimeoutError("timed out"), ConnectionLost),
        (EOFError(), ConnectionLost),
    ],
)
def test_a_failure_that_leaves_the_connection_out_of_step_drops_it(error, kind):
    dropped = []
    with pytest.raises(kind), map_exceptions("SIZE /a.wav", discard=lambda: dropped.append(1)):
        raise error
    assert dropped == [1]


def test_421_at_login_is_too_many_connections():
    with pytest.raises(TooManyConnections), map_exceptions("USER"):
        raise ftplib.error_temp("421 Too many connections.")


def test_a_cut_data_transfer_is_a_lost_connection_whatever_was_raised():
    dropped = []
    with (
        pytest.raises(ConnectionLost) as caught,
        map_exceptions("STOR /a", discard=lambda: dropped.append(1), lost=True),
    ):
        raise ftplib.error_temp("452 No space left on device.")  # usable on its own, but midway: not in step
    assert caught.value.command == "STOR" and dropped == [1]


def test_the_secret_is_masked_in_the_message():
    with pytest.raises(SessionFailure) as caught, map_exceptions("PASS", secret="hunter2"):
        raise ftplib.error_perm("530 Login incorrect for password hunter2.")
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_local_failures_and_kept_types_pass_through_unmapped():
    with pytest.raises(LocalFileChanged), map_exceptions("STOR /a"):
        raise LocalFileChanged("a.wav grew")
    with pytest.raises(ftplib.error_perm), map_exceptions("MLST /a", keep=(ftplib.error_perm,)):
        raise ftplib.error_perm("550 No such file.")
    with pytest.raises(TransientFailure), map_exceptions("MLST /a", keep=(ftplib.error_perm,)):
        raise ftplib.error_temp("450 Busy.")
