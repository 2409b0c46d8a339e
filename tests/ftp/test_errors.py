"""Classifying FTP replies and socket/TLS errors into the failure kinds the sink acts on."""

from __future__ import annotations

import ftplib
import socket
import ssl

import pytest

from pipeline.ftp.errors import (
    ConnectionLost,
    PermanentFailure,
    SessionFailure,
    TooManyConnections,
    TransientFailure,
    classify,
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
