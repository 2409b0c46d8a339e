"""Reply parsing without a socket: the same answers whether a reply came alone or in a pipelined flight."""

from __future__ import annotations

import ftplib

import pytest

from pipeline.ftp.replies import (
    first_line,
    is_unsupported,
    mlst_size,
    number_in_reply,
    passive_address,
    reply_code,
    reply_error,
    size_in_reply,
)


@pytest.mark.parametrize(
    ("reply", "code"),
    [("213 1234", 213), (ftplib.error_perm("550 No such file."), 550), ("", 0), ("garbage", 0)],
)
def test_reply_code_reads_the_three_digits_of_a_reply_or_an_ftplib_error(reply, code):
    assert reply_code(reply) == code


def test_first_line_of_a_multiline_reply():
    assert first_line("  250-Listing\r\n size=3;\r\n250 End\r\n") == "250-Listing"
    assert first_line("   ") == "   "


@pytest.mark.parametrize(
    ("reply", "unsupported"), [("500 ?", True), ("502 no", True), ("504 x", True), ("550 x", False)]
)
def test_unsupported_replies(reply, unsupported):
    assert is_unsupported(reply) is unsupported


@pytest.mark.parametrize(
    ("reply", "kind"),
    [("421 bye", ftplib.error_temp), ("553 no", ftplib.error_perm), ("226 ok", ftplib.error_reply)],
)
def test_reply_error_is_what_voidcmd_would_raise(reply, kind):
    error = reply_error(reply + "\r\n")
    assert type(error) is kind and str(error) == reply


@pytest.mark.parametrize(
    ("reply", "size"), [("213 1234", 1234), ("213 ", None), ("213 big", None), ("550 No such file.", None)]
)
def test_size_in_reply_reads_only_a_213(reply, size):
    assert size_in_reply(reply) == size


def test_number_in_reply_takes_any_code():
    assert number_in_reply("250 77") == 77 and number_in_reply("250") is None


def test_mlst_size_reads_the_size_fact_in_any_case_and_position():
    reply = "250-Listing /a.wav\r\n type=file;Size=3000;modify=20240501000000; /a.wav\r\n250 End."
    assert mlst_size(reply) == 3000
    assert mlst_size("250-Listing\r\n size=12; /x\r\n250 End.") == 12
    assert mlst_size("250-Listing\r\n type=dir; /x\r\n250 End.") is None


def test_passive_addresses_from_epsv_and_pasv_use_the_control_peer():
    peer = ("192.0.2.10", 21)
    assert passive_address("229 Entering Extended Passive Mode (|||50123|)", peer) == ("192.0.2.10", 50123)
    # A NAT'd server announces its private address in PASV: the control connection's peer is used instead.
    assert passive_address("227 Entering Passive Mode (10,255,0,7,195,211).", peer) == ("192.0.2.10", 50131)
    assert passive_address("500 EPSV not understood.", peer) is None
    with pytest.raises(ftplib.Error):
        passive_address("229 Entering Extended Passive Mode (broken)", peer)
