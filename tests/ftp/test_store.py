"""The STOR step against a real pyftpdlib server on loopback: resumes (REST, APPE), the overwrite guard in
the STOR's flight, refusals, sendfile and blocks, and an abort from another thread."""

from __future__ import annotations

import threading

import pytest

from pipeline.ftp.errors import (
    ConnectionLost,
    PermanentFailure,
    TargetExists,
    TransientFailure,
)
from pipeline.ftp.session import UploadProgress, UploadSession
from pipeline.transport.bandwidth import TokenBucket
from tests.ftp.support import tls_server
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write


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
