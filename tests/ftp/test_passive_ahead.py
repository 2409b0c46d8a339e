"""The next file's data port asked for in the rename's flight: three round trips per file instead of four."""

from __future__ import annotations

from operators.model import Priority, UploadJob
from pipeline.ftp.params import UploadPolicy
from pipeline.ftp.session import UploadSession
from pipeline.sink.board import JobBoard
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.workers import Sink
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write


def test_the_next_epsv_rides_in_the_rename_flight(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    a, b = write(outbox / "a.wav", 100), write(outbox / "b.wav", 5000)
    with UploadSession(params_for(server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 100)
        mark = len(faults.journal)
        session.upload(str(outbox / "a.wav"), "a2.wav", 100, next_upload=lambda: True)
        session.upload(str(outbox / "b.wav"), "b.wav", 5000)
        wait_until(lambda: len(faults.journal) >= mark + 10)
        commands = [cmd for cmd, _ in faults.journal[mark : mark + 10]]
        flights = faults.flights[mark : mark + 10]
    assert commands == ["EPSV", "STOR", "RNFR", "RNTO", "SIZE", "EPSV", "STOR", "RNFR", "RNTO", "SIZE"]
    assert len(set(flights[2:6])) == 1  # RNFR, RNTO, SIZE and the next EPSV: one write
    assert len(set(flights[5:])) == 3  # the second file: that flight, STOR, then its own rename flight
    assert (ftp_root / "upload" / "a2.wav").read_bytes() == a
    assert (ftp_root / "upload" / "b.wav").read_bytes() == b


def test_an_unused_port_is_dropped_with_abor_and_the_session_carries_on(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 300)
    with UploadSession(params_for(server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 300, next_upload=lambda: True)
        session.drop_passive()
        session.drop_passive()  # nothing held: no command
        session.noop()
        session.upload(str(outbox / "a.wav"), "b.wav", 300)
    assert faults.commands("ABOR") == [""]
    assert [cmd for cmd, _ in faults.journal].count("EPSV") == 3
    assert (ftp_root / "upload" / "b.wav").read_bytes() == data


def test_with_epsv_refused_the_port_ahead_comes_from_pasv(make_server, ftp_root, outbox, credentials):
    faults = Faults(refuse={"EPSV": "500 EPSV not understood."})
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 300)
    with UploadSession(params_for(server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 300, next_upload=lambda: True)
        session.upload(str(outbox / "a.wav"), "b.wav", 300)
    assert [cmd for cmd, _ in faults.journal].count("PASV") == 2
    assert (ftp_root / "upload" / "b.wav").read_bytes() == data


def test_without_pipelining_nothing_is_asked_ahead(make_server, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    write(outbox / "a.wav", 10)
    asked = []
    with UploadSession(params_for(server, credentials, pipelining=False)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 10, next_upload=lambda: asked.append(1) or True)
    assert not asked


def test_an_untaken_job_goes_back_first_in_its_queue():
    board = JobBoard(retry_base=1.0, retry_max=8.0)
    for name in ("a", "b"):
        board.put(UploadJob(f"/out/{name}", f"/up/{name}", 1, 1, Priority.BACKFILL))
    taken = board.take(timeout=0)
    assert taken is not None and taken.attempts == 1
    board.put(UploadJob("/out/a", "/up/a", 2, 2, Priority.LIVE))  # changed meanwhile: a follow-up
    board.untake(taken)
    again = board.take(timeout=0)
    assert again is taken and again.attempts == 1 and again.job.size == 2 and again.job.priority == Priority.LIVE
    assert board.counts()["in_flight"] == 1


def test_one_session_uploads_a_queue_with_one_epsv_per_file_and_no_abor(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    contents = {name: write(outbox / name, 1000 + i) for i, name in enumerate(f"f{i}.wav" for i in range(6))}
    results: list[UploadResult] = []
    sink = Sink(
        params_for(server, credentials), UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5), results.append
    )
    for name, data in contents.items():
        sink.put(UploadJob(str(outbox / name), f"/upload/{name}", len(data), (outbox / name).stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) == len(contents))
    finally:
        sink.stop(5)
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert all((ftp_root / "upload" / name).read_bytes() == data for name, data in contents.items())
    assert faults.commands("EPSV") == [""] * len(contents) and not faults.commands("ABOR")
    assert not any((outbox / name).exists() for name in contents)
