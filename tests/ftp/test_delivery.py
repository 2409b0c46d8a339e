"""The delivery protocol against a real pyftpdlib server on loopback: `.part` -> rename -> verify, the
commands and flights it costs, and what stays on the server when a step is refused."""

from __future__ import annotations

import logging

import pytest

from pipeline.ftp.delivery import Upload
from pipeline.ftp.errors import (
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    TransientFailure,
)
from pipeline.ftp.session import UploadProgress, UploadSession
from pipeline.transport.base import Delivery
from tests.ftp.support import after
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write


def test_upload_goes_through_a_temp_name_and_costs_five_commands(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    ftp_server = make_server(faults=faults)
    data = write(outbox / "a.wav", 300_000)
    small = write(outbox / "b.wav", 10)
    journal = faults.journal
    with UploadSession(params_for(ftp_server, credentials)) as session:
        report = session.upload(str(outbox / "a.wav"), "/upload/st/2024-05-01/audio/a.wav", len(data))
        mark = len(journal)
        second = session.upload(str(outbox / "b.wav"), "st/2024-05-01/audio/b.wav", len(small))

    assert (ftp_root / "upload/st/2024-05-01/audio/a.wav").read_bytes() == data
    assert (ftp_root / "upload/st/2024-05-01/audio/b.wav").read_bytes() == small
    assert sorted(p.name for p in (ftp_root / "upload/st/2024-05-01/audio").iterdir()) == ["a.wav", "b.wav"]
    assert (report.bytes_sent, report.resumed_from, report.verified) == (300_000, 0, True)
    assert second.reply.startswith("250")
    # Persistent session: no login, TYPE, CWD or MKD for the second file in a known folder.
    assert after(journal, mark) == ["EPSV", "STOR", "RNFR", "RNTO", "SIZE", "QUIT"]
    assert ("STOR", "/upload/st/2024-05-01/audio/.b.wav.part") in journal
    assert [cmd for cmd, _ in journal].count("TYPE") == 1


@pytest.mark.parametrize(("pipelining", "flights"), [(True, 3), (False, 5)])
def test_pipelining_sends_rename_and_size_in_one_flight(make_server, outbox, credentials, pipelining, flights):
    faults = Faults()
    server = make_server(faults=faults)
    write(outbox / "a.wav", 100)
    with UploadSession(params_for(server, credentials, pipelining=pipelining)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 100)
        mark = len(faults.journal)
        report = session.upload(str(outbox / "a.wav"), "b.wav", 100)
        wait_until(lambda: len(faults.journal) >= mark + 5)
        commands = faults.journal[mark : mark + 5]
        reads = faults.flights[mark : mark + 5]
    assert [cmd for cmd, _ in commands] == ["EPSV", "STOR", "RNFR", "RNTO", "SIZE"]
    assert len(set(reads)) == flights  # client waits: EPSV, 150, 226, then one per flight after it
    assert report.verified is True


def test_an_existing_final_file_is_replaced(ftp_server, ftp_root, outbox, credentials):
    target = ftp_root / "upload/st/a.wav"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old and longer than the new one" * 100)
    data = write(outbox / "a.wav", 50)
    with UploadSession(params_for(ftp_server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "st/a.wav", 50)
    assert target.read_bytes() == data


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_server_that_will_not_rename_onto_a_file_gets_it_deleted_first(
    make_server, ftp_root, outbox, credentials, pipelining
):
    faults = Faults(rnto_no_replace=True)
    server = make_server(faults=faults)
    target = ftp_root / "upload/a.wav"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"old")
    data = write(outbox / "a.wav", 1000)
    with UploadSession(params_for(server, credentials, pipelining=pipelining)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 1000)
    assert target.read_bytes() == data
    assert [cmd for cmd, _ in faults.journal if cmd in ("RNFR", "RNTO", "DELE")] == [
        "RNFR",
        "RNTO",
        "DELE",
        "RNFR",
        "RNTO",
    ]


def test_without_atomic_rename_the_file_is_stored_under_its_name(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    ftp_server = make_server(faults=faults)
    data = write(outbox / "a.h264", 5000)
    journal = faults.journal
    with UploadSession(params_for(ftp_server, credentials)) as session:
        session.upload(str(outbox / "a.h264"), "v/a.h264", 5000, atomic_rename=False)
    assert (ftp_root / "upload/v/a.h264").read_bytes() == data
    assert ("STOR", "/upload/v/a.h264") in journal
    assert "RNFR" not in [cmd for cmd, _ in journal]


@pytest.mark.parametrize("pipelining", [True, False])
def test_without_size_the_check_uses_mlst(make_server, ftp_root, outbox, credentials, pipelining):
    faults = Faults(no_size=True)
    server = make_server(faults=faults)
    write(outbox / "a.wav", 777)
    with UploadSession(params_for(server, credentials, pipelining=pipelining)) as session:
        first = session.upload(str(outbox / "a.wav"), "a.wav", 777)
        second = session.upload(str(outbox / "a.wav"), "b.wav", 777)
    assert first.verified is True and second.verified is True
    assert len(faults.commands("SIZE")) == 1  # learned once per session
    assert len(faults.commands("MLST")) == 2


def test_without_size_or_mlst_the_upload_is_trusted_on_226_and_logged_once(
    make_server, ftp_root, outbox, credentials, caplog
):
    server = make_server(faults=Faults(no_size=True, no_mlst=True))
    write(outbox / "a.wav", 777)
    caplog.set_level(logging.WARNING, logger="beemon.sink")
    with UploadSession(params_for(server, credentials)) as session:
        first = session.upload(str(outbox / "a.wav"), "a.wav", 777)
        session.upload(str(outbox / "a.wav"), "b.wav", 777)
    assert first.verified is None
    assert (ftp_root / "upload/a.wav").stat().st_size == 777
    warnings = [r.getMessage() for r in caplog.records if "neither SIZE nor MLST" in r.getMessage()]
    assert len(warnings) == 1


def test_a_size_mismatch_is_a_transient_failure(make_server, ftp_root, outbox, credentials):
    server = make_server()
    write(outbox / "a.wav", 100)
    with UploadSession(params_for(server, credentials)) as session:
        # Tell the session the file is shorter than it is: the server ends up with 50 bytes, SIZE says 50.
        report = session.upload(str(outbox / "a.wav"), "a.wav", 50)
        assert report.verified is True
        (ftp_root / "upload/a.wav").write_bytes(b"x" * 10)  # the server's copy changes behind our back
        with pytest.raises(TransientFailure, match="size mismatch"):
            Upload(session.parts, Delivery(str(outbox / "a.wav"), "/upload/a.wav", 50), UploadProgress()).verify(None)


@pytest.mark.parametrize("pipelining", [True, False])
def test_553_on_rnfr_is_a_permanent_rename_refusal_and_leaves_no_final_file(
    make_server, ftp_root, outbox, credentials, pipelining
):
    server = make_server(faults=Faults(refuse={"RNFR": "553 Renaming not allowed."}))
    data = write(outbox / "a.wav", 10)
    session = UploadSession(params_for(server, credentials, pipelining=pipelining))
    with session, pytest.raises(PermanentFailure, match="rename refused: 553"):
        session.upload(str(outbox / "a.wav"), "a.wav", 10)
    assert not (ftp_root / "upload/a.wav").exists()
    assert (ftp_root / "upload/.a.wav.part").read_bytes() == data


def test_a_vanished_local_file_is_reported_as_gone(ftp_server, outbox, credentials):
    with UploadSession(params_for(ftp_server, credentials)) as session, pytest.raises(LocalFileGone):
        session.upload(str(outbox / "missing.wav"), "missing.wav", 10)


def test_a_file_shorter_than_announced_is_changed_and_the_session_stays_in_step(
    ftp_server, ftp_root, outbox, credentials
):
    data = write(outbox / "a.wav", 1000)
    with UploadSession(params_for(ftp_server, credentials)) as session:
        with pytest.raises(LocalFileChanged):
            session.upload(str(outbox / "a.wav"), "a.wav", 5000)
        assert not (ftp_root / "upload/a.wav").exists()
        session.upload(str(outbox / "a.wav"), "a.wav", 1000)
        session.noop()
    assert (ftp_root / "upload/a.wav").read_bytes() == data
