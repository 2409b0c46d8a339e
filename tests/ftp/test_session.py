"""UploadSession in-process against a real pyftpdlib server on loopback (plain, faulty, FTPS)."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path

import pytest

from pipeline.ftp import connection as ftp_connection
from pipeline.ftp.client import make_context
from pipeline.ftp.delivery import Upload
from pipeline.ftp.errors import (
    ConnectionLost,
    LocalFileChanged,
    LocalFileGone,
    PermanentFailure,
    SessionFailure,
    TargetExists,
    TooManyConnections,
    TransientFailure,
)
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadProgress, UploadSession, temp_name
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivery
from tests.conftest import params_for, wait_until
from tests.ftp_faults import Faults, FaultyTLSHandler, ImplicitTLSHandler


def write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def after(journal: list[tuple[str, str]], start: int) -> list[str]:
    return [cmd for cmd, _ in journal[start:]]


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


def test_folders_are_created_once_and_existing_ones_are_fine(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    ftp_server = make_server(faults=faults)
    (ftp_root / "upload/st/2024-05-01/audio").mkdir(parents=True)
    write(outbox / "x.wav", 100)
    journal = faults.journal
    with UploadSession(params_for(ftp_server, credentials)) as session:
        session.make_remote_directories("st/2024-05-01/audio")  # exists: tolerated
        session.make_remote_directories("/upload/st/2024-05-02/video")  # new date and sensor
        session.make_directory("st/2024-05-02/video")  # cached: no command
        mark = len(journal)
        session.upload(str(outbox / "x.wav"), "st/2024-05-02/video/x.wav", 100)
        session.upload(str(outbox / "x.wav"), "st/2024-05-01/audio/x.wav", 100)
    assert (ftp_root / "upload/st/2024-05-02/video/x.wav").stat().st_size == 100
    assert "MKD" not in after(journal, mark)
    mkds = [arg for cmd, arg in journal if cmd == "MKD"]
    assert mkds.count("/upload/st/2024-05-02/video") == 2  # first try (no parent), then after MKD of the date
    assert mkds.count("/upload/st/2024-05-01/audio") == 1


def test_a_folder_removed_on_the_server_after_caching_is_made_again(ftp_server, ftp_root, outbox, credentials):
    data = write(outbox / "a.wav", 100)
    with UploadSession(params_for(ftp_server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "st/d/audio/a.wav", 100)
        shutil.rmtree(ftp_root / "upload/st")
        session.upload(str(outbox / "a.wav"), "st/d/audio/b.wav", 100)
    assert (ftp_root / "upload/st/d/audio/b.wav").read_bytes() == data


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


def test_a_cut_transfer_resumes_with_rest_and_never_shows_a_partial_final_file(
    make_server, ftp_root, outbox, credentials
):
    faults = Faults(cut_after_bytes=400_000, cuts=1)
    server = make_server(faults=faults)
    data = write(outbox / "big.h264", 1_500_000)
    params = params_for(server, credentials, blocksize=64 * 1024)
    session = UploadSession(params)
    session.connect()
    # Depending on socket buffers the client sees a broken pipe (ConnectionLost) or the 426 reply.
    with pytest.raises(TransientFailure):
        session.upload(str(outbox / "big.h264"), "v/big.h264", len(data))
    partial = ftp_root / "upload/v/.big.h264.part"
    assert not (ftp_root / "upload/v/big.h264").exists()
    assert 400_000 <= partial.stat().st_size < len(data)
    done = partial.stat().st_size

    if not session.connected:
        session.connect()
    report = session.upload(str(outbox / "big.h264"), "v/big.h264", len(data), resume=True)
    session.close()
    assert (ftp_root / "upload/v/big.h264").read_bytes() == data
    assert not partial.exists()
    assert report.resumed_from == done
    assert report.bytes_sent == len(data) - done
    assert faults.commands("REST") == [str(done)]


def test_progress_says_whether_the_stor_was_accepted(make_server, outbox, credentials):
    faults = Faults(stor_replies=["452 No space left on device."], cut_after_bytes=50_000, cuts=1)
    server = make_server(faults=faults)
    write(outbox / "a.wav", 200_000)
    progress = UploadProgress()
    with UploadSession(params_for(server, credentials, blocksize=16 * 1024)) as session:
        with pytest.raises(TransientFailure):
            session.upload(str(outbox / "a.wav"), "a.wav", 200_000, progress=progress)
        assert progress == UploadProgress(stored=False)  # refused before a byte: the .part is not ours
        with pytest.raises(TransientFailure):
            session.upload(str(outbox / "a.wav"), "a.wav", 200_000, progress=progress)
    assert progress == UploadProgress(stored=True)  # cut halfway: the .part holds our beginning


@pytest.mark.parametrize("stale", [b"x" * 10_000, b"y" * 12_000])
def test_resume_never_skips_the_stor_for_a_part_as_long_as_the_file(make_server, ftp_root, outbox, credentials, stale):
    faults = Faults()
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 10_000)
    partial = ftp_root / "upload/.a.wav.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(stale)
    with UploadSession(params_for(server, credentials)) as session:
        report = session.upload(str(outbox / "a.wav"), "a.wav", len(data), resume=True)
    assert (report.resumed_from, report.bytes_sent) == (0, len(data))
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert faults.commands("REST") == []


def test_resume_falls_back_to_appe_when_rest_is_refused(make_server, ftp_root, outbox, credentials):
    faults = Faults(refuse={"REST": "502 Command not implemented."})
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 100_000)
    partial = ftp_root / "upload/.a.wav.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[:30_000])
    with UploadSession(params_for(server, credentials)) as session:
        report = session.upload(str(outbox / "a.wav"), "a.wav", len(data), resume=True)
    assert report.resumed_from == 30_000
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert faults.commands("APPE") == ["/upload/.a.wav.part"]


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_guarded_upload_asks_the_target_size_only_where_a_file_can_be(make_server, outbox, credentials, pipelining):
    faults = Faults()
    server = make_server(faults=faults)
    write(outbox / "a.wav", 100)
    asked = []

    def may_replace(existing: int) -> bool:
        asked.append(existing)
        return True

    with UploadSession(params_for(server, credentials, pipelining=pipelining)) as session:
        mark = len(faults.journal)
        session.upload(str(outbox / "a.wav"), "new/a.wav", 100, may_replace=may_replace)
        fresh = [cmd for cmd, _ in faults.journal[mark:]]
        mark = len(faults.journal)
        session.upload(str(outbox / "a.wav"), "new/a.wav", 100, may_replace=may_replace)
        wait_until(lambda: len(faults.journal) >= mark + 6)
        again, flights = faults.journal[mark:], faults.flights[mark:]
    assert "SIZE" not in fresh[: fresh.index("STOR")]  # a folder made just now holds nothing: no question
    assert asked == [100]
    if pipelining:  # asked in the STOR's own flight: no round trip more
        assert [cmd for cmd, _ in again][:6] == ["EPSV", "SIZE", "STOR", "RNFR", "RNTO", "SIZE"]
        assert again[1] == ("SIZE", "/upload/new/a.wav") and flights[1] == flights[2]
    else:
        assert [cmd for cmd, _ in again][:6] == ["SIZE", "EPSV", "STOR", "RNFR", "RNTO", "SIZE"]


def test_a_refused_target_ends_the_upload_before_a_byte_is_sent(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 300_000)
    (ftp_root / "upload").mkdir()
    (ftp_root / "upload/a.wav").write_bytes(b"another file")
    progress = UploadProgress()
    with UploadSession(params_for(server, credentials)) as session:
        with pytest.raises(TargetExists) as refused:
            session.upload(str(outbox / "a.wav"), "a.wav", len(data), progress=progress, may_replace=lambda n: False)
        session.noop()  # still in step
    assert (
        str(refused.value)
        == f"refusing to overwrite /upload/a.wav (12 B) with a different file {outbox / 'a.wav'} (300000 B)"
    )
    assert sorted(p.name for p in (ftp_root / "upload").iterdir()) == ["a.wav"]  # the empty .part removed
    assert (ftp_root / "upload/a.wav").read_bytes() == b"another file"
    assert faults.commands("DELE") == ["/upload/.a.wav.part"] and faults.commands("RNFR") == []
    assert not progress.renamed


def test_without_size_the_guard_asks_mlst_after_the_transfer_never_during_it(
    make_server, ftp_root, outbox, credentials
):
    faults = Faults(no_size=True)
    server = make_server(faults=faults)
    write(outbox / "a.wav", 3000)
    (ftp_root / "upload").mkdir()
    (ftp_root / "upload/a.wav").write_bytes(b"another file")
    with UploadSession(params_for(server, credentials)) as session:
        with pytest.raises(TargetExists):
            session.upload(str(outbox / "a.wav"), "a.wav", 3000, may_replace=lambda n: n == 3000)
        report = session.upload(str(outbox / "a.wav"), "b.wav", 3000, may_replace=lambda n: False)  # no b.wav
    commands = [cmd for cmd, _ in faults.journal]
    first = commands[commands.index("EPSV") :]
    assert first[:6] == ["EPSV", "SIZE", "STOR", "MLST", "EPSV", "MLST"]  # the second asks MLST in its flight
    assert (ftp_root / "upload/a.wav").read_bytes() == b"another file"
    assert report.verified is True and faults.commands("RNTO") == ["/upload/b.wav"]


def test_a_part_file_of_unknown_origin_is_overwritten(ftp_server, ftp_root, outbox, credentials):
    data = write(outbox / "a.wav", 10_000)
    partial = ftp_root / "upload/.a.wav.part"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"garbage from some other version")
    with UploadSession(params_for(ftp_server, credentials)) as session:
        report = session.upload(str(outbox / "a.wav"), "a.wav", len(data))
    assert report.resumed_from == 0
    assert (ftp_root / "upload/a.wav").read_bytes() == data


def test_epsv_refused_falls_back_to_pasv_and_ignores_the_announced_address(make_server, ftp_root, outbox, credentials):
    faults = Faults(refuse={"EPSV": "502 Command not implemented."})
    server = make_server(faults=faults, masquerade_address="10.255.0.7")
    data = write(outbox / "a.wav", 2000)
    with UploadSession(params_for(server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 2000)
        session.upload(str(outbox / "a.wav"), "b.wav", 2000)
    assert (ftp_root / "upload/b.wav").read_bytes() == data
    assert [cmd for cmd, _ in faults.journal].count("EPSV") == 1
    assert [cmd for cmd, _ in faults.journal].count("PASV") == 2


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


def test_550_on_stor_is_permanent_and_the_session_carries_on(make_server, ftp_root, outbox, credentials):
    faults = Faults(deny_stor=("denied",))
    server = make_server(faults=faults)
    write(outbox / "denied.wav", 10)
    data = write(outbox / "fine.wav", 10)
    with UploadSession(params_for(server, credentials)) as session:
        with pytest.raises(PermanentFailure, match="550") as caught:
            session.upload(str(outbox / "denied.wav"), "denied.wav", 10)
        assert caught.value.command == "STOR"
        session.upload(str(outbox / "fine.wav"), "fine.wav", 10)
        assert session.connected
    assert (ftp_root / "upload/fine.wav").read_bytes() == data
    assert not (ftp_root / "upload/denied.wav").exists()


@pytest.mark.parametrize("reply", ["452 No space left on device.", "552 Exceeded storage allocation."])
def test_no_space_on_stor_is_transient_and_the_session_carries_on(make_server, ftp_root, outbox, credentials, reply):
    server = make_server(faults=Faults(stor_replies=[reply]))
    data = write(outbox / "a.wav", 10)
    with UploadSession(params_for(server, credentials)) as session:
        with pytest.raises(TransientFailure, match=reply[:3]) as caught:
            session.upload(str(outbox / "a.wav"), "a.wav", 10)
        assert caught.value.session_usable
        session.upload(str(outbox / "a.wav"), "a.wav", 10)
    assert (ftp_root / "upload/a.wav").read_bytes() == data


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


def test_421_at_login_is_too_many_connections(make_server, credentials):
    server = make_server(faults=Faults(logins_421=1))
    session = UploadSession(params_for(server, credentials))
    with pytest.raises(TooManyConnections, match="421"):
        session.connect()
    assert not session.connected
    session.connect()
    session.close()


def test_server_connection_limit_421_at_welcome_is_too_many_connections(make_server, credentials):
    server = make_server(max_cons_per_ip=1)
    with UploadSession(params_for(server, credentials)), pytest.raises(TooManyConnections, match="421"):
        UploadSession(params_for(server, credentials)).connect()


def test_a_wrong_password_is_a_session_failure_without_the_password(make_server, credentials):
    server = make_server()
    params = params_for(server, credentials, password="wrong-" + credentials.password)
    with pytest.raises(SessionFailure, match="530") as caught:
        UploadSession(params).connect()
    assert params.password not in str(caught.value)
    assert params.password not in repr(caught.value)


def test_nothing_listening_is_a_lost_connection_naming_the_address(credentials):
    params = FtpParams("127.0.0.1", 9, credentials.username, credentials.password, timeout=2)
    with pytest.raises(ConnectionLost, match=r"127\.0\.0\.1:9\b"):
        UploadSession(params).connect()


def test_a_stalled_reply_times_out_and_drops_the_session(make_server, outbox, credentials):
    server = make_server(faults=Faults(stall={"SIZE": 3.0}))
    write(outbox / "a.wav", 10)
    session = UploadSession(params_for(server, credentials, timeout=0.3))
    session.connect()
    with pytest.raises(ConnectionLost):
        session.upload(str(outbox / "a.wav"), "a.wav", 10)
    assert not session.connected


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


@pytest.mark.parametrize("use_sendfile", [True, False])
def test_plain_transfers_with_and_without_sendfile_are_identical(
    ftp_server, ftp_root, outbox, credentials, use_sendfile
):
    data = write(outbox / "a.h264", 2_500_001)
    with UploadSession(params_for(ftp_server, credentials), use_sendfile=use_sendfile) as session:
        session.upload(str(outbox / "a.h264"), "a.h264", len(data))
    assert (ftp_root / "upload/a.h264").read_bytes() == data


def test_abort_from_another_thread_ends_a_throttled_transfer(ftp_server, ftp_root, outbox, credentials):
    write(outbox / "a.wav", 400_000)
    session = UploadSession(params_for(ftp_server, credentials), throttle=TokenBucket(50_000))
    session.connect()
    timer = threading.Timer(0.3, session.abort)
    timer.start()
    with pytest.raises(ConnectionLost):
        session.upload(str(outbox / "a.wav"), "a.wav", 400_000)
    timer.join()
    assert not (ftp_root / "upload/a.wav").exists()


def test_repr_and_original_constructor_hide_the_password(credentials):
    session = UploadSession.original(credentials.username, credentials.password, "127.0.0.1", 2121, "/upload")
    assert credentials.password not in repr(session)
    assert credentials.password not in repr(session.params)
    assert session.params.remote_root == "/upload"
    assert temp_name("/a/b/c.wav") == "/a/b/.c.wav.part"


# --- FTPS


def tls_server(make_server, tls_files, handler=FaultyTLSHandler, faults: Faults | None = None):
    return make_server(
        handler,
        faults=faults,
        certfile=tls_files.cert_file,
        tls_control_required=True,
        tls_data_required=True,
        ssl_context=None,
    )


@pytest.mark.parametrize("pipelining", [True, False])
def test_explicit_ftps_uploads_and_reuses_the_tls_session_on_data_connections(
    make_server, tls_files, ftp_root, outbox, credentials, pipelining
):
    faults = Faults()
    server = tls_server(make_server, tls_files, faults=faults)
    data = write(outbox / "a.wav", 300_000)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file, pipelining=pipelining)
    with UploadSession(params) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", len(data))
        assert session.last_data_session_reused is True
        session.upload(str(outbox / "a.wav"), "b.wav", len(data))
        assert session.last_data_session_reused is True
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert (ftp_root / "upload/b.wav").read_bytes() == data
    assert [cmd for cmd, _ in faults.journal][:3] == ["AUTH", "USER", "PASS"]


def test_over_ftps_a_refused_target_ends_the_transfer_and_the_session_carries_on(
    make_server, tls_files, ftp_root, outbox, credentials
):
    faults = Faults()
    server = tls_server(make_server, tls_files, faults=faults)
    data = write(outbox / "a.wav", 50_000)
    (ftp_root / "upload").mkdir()
    (ftp_root / "upload/a.wav").write_bytes(b"another file")
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file)
    with UploadSession(params) as session:
        with pytest.raises(TargetExists):
            session.upload(str(outbox / "a.wav"), "a.wav", len(data), may_replace=lambda n: False)
        report = session.upload(str(outbox / "a.wav"), "b.wav", len(data), may_replace=lambda n: False)
    assert report.verified is True and report.bytes_sent == len(data)
    assert (ftp_root / "upload/a.wav").read_bytes() == b"another file"
    assert (ftp_root / "upload/b.wav").read_bytes() == data
    assert sorted(p.name for p in (ftp_root / "upload").iterdir()) == ["a.wav", "b.wav"]


def test_the_tls_context_is_made_once_per_session_and_never_for_plain_ftp(
    make_server, tls_files, credentials, monkeypatch
):
    """Loading the CA certificates costs some 20 ms of CPU: not at every reconnect through an outage."""
    made = []
    monkeypatch.setattr(ftp_connection, "make_context", lambda params: made.append(params) or make_context(params))
    plain = UploadSession(params_for(make_server(), credentials))
    for _ in range(2):
        plain.connect()
    assert plain.client is not None and plain.client.context is None
    plain.close()
    assert made == []
    server = tls_server(make_server, tls_files)
    with UploadSession(params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file)) as secure:
        secure.connect()  # a reconnect
        secure.noop()
    assert len(made) == 1


def test_implicit_ftps_uploads(make_server, tls_files, ftp_root, outbox, credentials):
    server = tls_server(make_server, tls_files, handler=ImplicitTLSHandler)
    data = write(outbox / "a.wav", 70_000)
    params = params_for(server, credentials, tls="implicit", ca_file=tls_files.ca_file)
    with UploadSession(params) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", len(data))
        assert session.last_data_session_reused is True
    assert (ftp_root / "upload/a.wav").read_bytes() == data


def test_a_wrong_ca_fails_clearly_and_uploads_nothing(make_server, tls_files, ftp_root, credentials):
    faults = Faults()
    server = tls_server(make_server, tls_files, faults=faults)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.other_ca_file)
    with pytest.raises(SessionFailure, match="TLS certificate verification failed") as caught:
        UploadSession(params).connect()
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert "PASS" not in [cmd for cmd, _ in faults.journal]
    assert list(ftp_root.iterdir()) == []


def test_verify_false_accepts_an_unknown_ca(make_server, tls_files, outbox, ftp_root, credentials):
    server = tls_server(make_server, tls_files)
    write(outbox / "a.wav", 10)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.other_ca_file, verify=False)
    with UploadSession(params) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 10)
    assert (ftp_root / "upload/a.wav").stat().st_size == 10


def test_plain_ftp_against_a_server_requiring_tls_is_a_session_failure(make_server, tls_files, credentials):
    server = tls_server(make_server, tls_files)
    with pytest.raises(SessionFailure, match="550"):
        UploadSession(params_for(server, credentials)).connect()
