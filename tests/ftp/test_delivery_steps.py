"""The delivery protocol's steps one by one, without sockets (tests/ftp/scripted.py): which commands, which
flights, and what each reply decides. The whole protocol against the loopback server: test_delivery.py."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline.ftp.errors import PermanentFailure, TargetExists, TransientFailure
from tests.ftp.scripted import ScriptedConnection, scripted_upload

PART, TARGET = "/upload/st/d/audio/.a.wav.part", "/upload/st/d/audio/a.wav"


@pytest.fixture
def local(tmp_path: Path) -> Path:
    path = tmp_path / "a.wav"
    path.write_bytes(b"x" * 1000)
    return path


# --- prepare the target


def test_a_new_folder_is_made_walking_up_and_disarms_the_guard(tmp_path, local):
    """Without pipelining: one command at a time, up to the first folder that exists, then down."""
    conn = ScriptedConnection(
        [
            ("MKD /upload/st/new/audio", "550 No such directory."),
            ("CWD /upload/st/new/audio", "550 No such directory."),
            ("MKD /upload/st/new", "257 Created."),
            ("MKD /upload/st/new/audio", "257 Created."),
        ],
        pipelining=False,
    )
    upload = scripted_upload(conn, local, "st/new/audio/a.wav", may_replace=lambda n: False)
    upload.directories.clear()
    with open(local, "rb") as handle:
        assert upload.prepare_target(handle) == 1000
    assert upload.guard is None  # a folder made just now holds no file to protect: no question asked
    assert not conn.script


NEW_CHAIN = [
    "MKD /upload",
    "MKD /upload/st",
    "MKD /upload/st/new",
    "MKD /upload/st/new/audio",
    "CWD /upload/st/new/audio",
    "EPSV",  # the transfer's data port, asked in the same flight
]
PORT = "229 Entering extended passive mode (|||40000|)."


def test_a_new_folder_chain_goes_in_one_flight_and_disarms_the_guard(local):
    replies = ["550 Exists.", "550 Exists.", "257 Created.", "257 Created.", "250 OK.", PORT]
    conn = ScriptedConnection(list(zip(NEW_CHAIN, replies, strict=True)))
    upload = scripted_upload(conn, local, "st/new/audio/a.wav", may_replace=lambda n: False)
    upload.directories.clear()
    with open(local, "rb") as handle:
        assert upload.prepare_target(handle) == 1000
    assert conn.flights == [NEW_CHAIN] and upload.guard is None
    assert conn.kept_passive == PORT  # the STOR needs no EPSV of its own


def test_a_421_to_the_chains_port_request_fails_the_upload(local):
    """The server closes the session (421) instead of giving the port: the upload fails now, as it would
    have at an EPSV of its own (and is retried on a new session)."""
    replies = ["550 Exists.", "550 Exists.", "257 Created.", "257 Created.", "250 OK.", "421 Closing."]
    conn = ScriptedConnection(list(zip(NEW_CHAIN, replies, strict=True)))
    upload = scripted_upload(conn, local, "st/new/audio/a.wav")
    upload.directories.clear()
    with open(local, "rb") as handle, pytest.raises(TransientFailure, match="421"):
        upload.prepare_target(handle)
    assert conn.kept_passive is None


def test_a_chain_that_existed_arms_the_guard(local):
    answers = {"MKD": "550 Exists.", "CWD": "250 OK.", "EPS": PORT}
    conn = ScriptedConnection([(line, answers[line[:3]]) for line in NEW_CHAIN])
    upload = scripted_upload(conn, local, "st/new/audio/a.wav", may_replace=lambda n: False)
    upload.directories.clear()
    with open(local, "rb") as handle:
        upload.prepare_target(handle)
    assert conn.flights == [NEW_CHAIN] and upload.guard is not None


def test_a_refused_chain_is_walked_to_name_the_folder_that_cannot_be_made(local):
    refused = [(line, PORT if line == "EPSV" else "550 Permission denied.") for line in NEW_CHAIN]
    walk = [
        ("MKD /upload/st/new/audio", "550 Permission denied."),
        ("CWD /upload/st/new/audio", "550 No such directory."),
        ("MKD /upload/st/new", "550 Permission denied."),
        ("CWD /upload/st/new", "550 No such directory."),
        ("MKD /upload/st", "550 Permission denied."),
        ("CWD /upload/st", "250 OK."),
        ("MKD /upload/st/new", "550 Permission denied."),
        ("CWD /upload/st/new", "550 No such directory."),
    ]
    conn = ScriptedConnection(refused + walk)
    upload = scripted_upload(conn, local, "st/new/audio/a.wav", may_replace=lambda n: False)
    upload.directories.clear()
    with open(local, "rb") as handle, pytest.raises(PermanentFailure, match="cannot create /upload/st/new: 550"):
        upload.prepare_target(handle)
    assert not conn.script


def test_a_known_folder_costs_nothing_and_arms_the_guard(local):
    conn = ScriptedConnection([])
    upload = scripted_upload(conn, local, may_replace=lambda n: False)
    with open(local, "rb") as handle:
        upload.prepare_target(handle)
    assert upload.guard is not None and conn.sent == []


# --- choose the offset


def test_a_resume_starts_where_this_versions_part_ends(local):
    conn = ScriptedConnection([(f"SIZE {PART}", "213 400")])
    assert scripted_upload(conn, local, resume=True).choose_offset() == 400


@pytest.mark.parametrize("part", ["213 1000", "213 0", "550 No such file."])
def test_a_part_that_is_whole_empty_or_absent_is_stored_again_from_the_start(local, part):
    conn = ScriptedConnection([(f"SIZE {PART}", part)])
    assert scripted_upload(conn, local, resume=True).choose_offset() == 0


def test_a_whole_part_of_this_version_is_only_renamed(local):
    conn = ScriptedConnection([(f"SIZE {PART}", "213 1000")])
    assert scripted_upload(conn, local, part_complete=True).choose_offset() is None


def test_without_resume_nothing_is_asked(local):
    conn = ScriptedConnection([])
    assert scripted_upload(conn, local).choose_offset() == 0 and conn.sent == []


def test_a_server_that_refused_a_resume_is_not_asked_again(local):
    conn = ScriptedConnection([])
    conn.features.resume_refused("451 Append/Restart not permitted")
    assert scripted_upload(conn, local, resume=True).choose_offset() == 0 and conn.sent == []


def test_the_guard_asks_the_target_in_the_resume_flight(local):
    conn = ScriptedConnection([(f"SIZE {PART}", "213 400"), (f"SIZE {TARGET}", "213 12")])
    upload = scripted_upload(conn, local, resume=True, may_replace=lambda n: False)
    with open(local, "rb") as handle:
        upload.prepare_target(handle)  # a known folder: the guard is armed
    with pytest.raises(TargetExists, match=r"\(12 B\)"):
        upload.choose_offset()
    assert conn.flights == [[f"SIZE {PART}", f"SIZE {TARGET}"]]


# --- rename


def test_the_rename_and_the_size_check_go_in_one_flight_with_the_next_epsv(local):
    conn = ScriptedConnection(
        [
            (f"RNFR {PART}", "350 Ready."),
            (f"RNTO {TARGET}", "250 Renamed."),
            (f"SIZE {TARGET}", "213 1000"),
            ("EPSV", "229 Entering Extended Passive Mode (|||50000|)"),
        ]
    )
    upload = scripted_upload(conn, local, next_upload=lambda: True)
    assert upload.rename() == ("250 Renamed.", "213 1000")
    assert len(conn.flights) == 1 and conn.kept_passive.startswith("229")
    assert upload.verify("213 1000") is True


def test_without_pipelining_each_command_waits_for_its_reply(local):
    conn = ScriptedConnection([(f"RNFR {PART}", "350 Ready."), (f"RNTO {TARGET}", "250 Renamed.")], pipelining=False)
    upload = scripted_upload(conn, local, next_upload=lambda: True)
    assert upload.rename() == ("250 Renamed.", None)
    assert conn.flights == [[f"RNFR {PART}"], [f"RNTO {TARGET}"]]


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_rnto_deletes_the_old_target_and_renames_once_more(local, pipelining):
    script = [(f"RNFR {PART}", "350 Ready."), (f"RNTO {TARGET}", "553 File exists.")]
    if pipelining:
        script.append((f"SIZE {TARGET}", "213 12"))
    script += [
        (f"DELE {TARGET}", "250 Deleted."),
        (f"RNFR {PART}", "350 Ready."),
        (f"RNTO {TARGET}", "250 Renamed."),
    ]
    conn = ScriptedConnection(script, pipelining=pipelining)
    assert scripted_upload(conn, local).rename() == ("250 Renamed.", None)
    assert not conn.script


def test_a_part_that_vanished_before_the_rename_is_transient(local):
    conn = ScriptedConnection(
        [
            (f"RNFR {PART}", "550 No such file."),
            (f"RNTO {TARGET}", "503 Bad sequence."),
            (f"SIZE {TARGET}", "550 No such file."),
            (f"SIZE {PART}", "550 No such file."),
        ]
    )
    with pytest.raises(TransientFailure, match="vanished"):
        scripted_upload(conn, local).rename()


def test_a_refused_rnfr_is_a_permanent_rename_refusal(local):
    conn = ScriptedConnection([(f"RNFR {PART}", "553 Renaming not allowed.")], pipelining=False)
    with pytest.raises(PermanentFailure, match="rename refused: 553"):
        scripted_upload(conn, local).rename()


# --- verify


def test_a_size_mismatch_is_transient(local):
    conn = ScriptedConnection([])
    with pytest.raises(TransientFailure, match="size mismatch: the server has 999 bytes, local 1000"):
        scripted_upload(conn, local).verify("213 999")


def test_size_unknown_in_the_flight_asks_mlst_and_learns_it(local):
    conn = ScriptedConnection([(f"MLST {TARGET}", f"250-Listing\r\n type=file;size=1000; {TARGET}\r\n250 End.")])
    upload = scripted_upload(conn, local)
    assert upload.verify("502 SIZE not implemented.") is True
    assert conn.features.probe_command == "MLST"


def test_a_target_missing_after_the_rename_is_transient(local):
    conn = ScriptedConnection([(f"SIZE {TARGET}", "550 No such file.")])
    with pytest.raises(TransientFailure, match="not on the server after the upload"):
        scripted_upload(conn, local).verify(None)


def test_without_size_or_mlst_the_upload_is_unverified_and_said_once(local, caplog):
    caplog.set_level(logging.WARNING, logger="beemon.sink")
    conn = ScriptedConnection([])
    conn.features.size_unsupported("502 no")
    conn.features.mlst_unsupported("502 no")
    assert [scripted_upload(conn, local).verify(None) for _ in range(2)] == [None, None]
    assert len([r for r in caplog.records if "neither SIZE nor MLST" in r.getMessage()]) == 1
    assert conn.sent == []
