"""UploadHelper as a real spawned process against a real (sometimes faulty) loopback server."""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from operators.model import Priority, UploadJob
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.process import UploadHelper
from tests.ftp_faults import Faults, FaultyTLSHandler
from tests.helpers import params_for, wait_until, write

FAST = UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5, idle_noop_seconds=5, stop_deadline_seconds=2)


class Run:
    """A started helper, its results as they arrive, and the server's journal."""

    def __init__(self, helper: UploadHelper, results: queue.Queue) -> None:
        self.helper = helper
        self.results = results
        self.collected: list[UploadResult] = []

    def until(self, predicate: Callable[[list[UploadResult]], object], timeout: float = 15.0) -> list[UploadResult]:
        deadline = time.monotonic() + timeout
        while not predicate(self.collected):
            try:
                self.collected.append(self.results.get(timeout=0.05))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(f"results so far: {self.collected}") from None
        return self.collected

    def delivered(self, count: int, timeout: float = 15.0) -> list[UploadResult]:
        self.until(lambda results: sum(r.outcome == Outcome.DELIVERED for r in results) >= count, timeout)
        return [r for r in self.collected if r.outcome == Outcome.DELIVERED]

    def outcomes(self, path: Path | str) -> list[Outcome]:
        return [r.outcome for r in self.collected if r.local_path == str(path)]


@pytest.fixture
def start_sink(credentials, caplog) -> Iterator[Callable[..., Run]]:
    caplog.set_level(logging.DEBUG, logger="beemon.sink")
    runs: list[Run] = []

    def start(server, *, policy: UploadPolicy = FAST, jobs: tuple[UploadJob, ...] = (), **params) -> Run:
        results = UploadHelper.new_queue()
        helper = UploadHelper(params_for(server, credentials, **params), policy, results)
        for job in jobs:  # queued before the child starts
            helper.submit(job)
        helper.start()
        runs.append(Run(helper, results))
        return runs[-1]

    yield start
    for run in runs:
        run.helper.stop(1.0)


def job_for(path: Path, remote: str, priority: Priority = Priority.LIVE, *, size: int = 0) -> UploadJob:
    """The job for `path` as it is (written first with `size` random bytes when `size` is given)."""
    if size:
        write(path, size)
    stat = path.stat()
    return UploadJob(str(path), remote, stat.st_size, stat.st_mtime_ns, priority)


def server_files(root: Path) -> dict[str, bytes]:
    return {"/" + str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def messages(caplog, level: int = logging.DEBUG) -> list[str]:
    return [r.getMessage() for r in list(caplog.records) if r.levelno >= level and r.name.startswith("beemon.sink")]


def test_a_mixed_set_arrives_byte_identical_where_it_belongs(make_server, start_sink, outbox, ftp_root):
    server = make_server()
    files = {
        "audio/st1@2024-05-01@10-00-00.wav": ("/upload/st1/2024-05-01/audio/st1@2024-05-01@10-00-00.wav", 300_000),
        "video/st1@2024-05-01@10-00-00.h264": ("/upload/st1/2024-05-01/video/st1@2024-05-01@10-00-00.h264", 1_200_000),
        "temp/st1@2024-05-01.csv.final": ("/upload/st1/2024-05-01/temp/st1@2024-05-01.csv", 4_000),
        "2024-05-02/audio/loose.wav": ("/upload/st9/2024-05-02/audio/loose.wav", 20_000),
    }
    contents = {remote: write(outbox / relative, size) for relative, (remote, size) in files.items()}
    bare = outbox / "temp/st1@2024-05-01.csv"  # the growing file the .final completes: its beginning, older
    bare.write_bytes(contents["/upload/st1/2024-05-01/temp/st1@2024-05-01.csv"][:3_000])
    final_mtime = (outbox / "temp/st1@2024-05-01.csv.final").stat().st_mtime_ns
    os.utime(bare, ns=(final_mtime - 10**9, final_mtime - 10**9))
    growing = outbox / "temp/st1@2024-05-02.csv"
    contents["/upload/st1/2024-05-02/temp/st1@2024-05-02.csv"] = write(growing, 2_000)
    run = start_sink(server)
    for relative, (remote, _) in files.items():
        run.helper.submit(job_for(outbox / relative, remote))
    run.helper.queue_upload(str(growing), "st1/2024-05-02/temp/st1@2024-05-02.csv")  # the original API

    delivered = run.delivered(5)
    assert server_files(ftp_root) == contents
    assert {r.local_path for r in delivered} == {str(outbox / f) for f in files} | {str(growing)}
    assert all(r.attempt == 1 and r.reply.startswith("250") for r in delivered)
    remaining = sorted(str(p.relative_to(outbox)) for p in outbox.rglob("*") if p.is_file())
    assert remaining == ["temp/st1@2024-05-02.csv"]  # a bare .csv is never deleted; X.csv went with X.csv.final
    stats = run.helper.stats()
    assert (stats.delivered, stats.failed, stats.queued_primary, stats.in_flight) == (5, 0, 0, 0)


def test_the_primary_queue_is_served_before_the_secondary(make_server, start_sink, outbox):
    gate = threading.Event()
    faults = Faults(hold={"PASS": gate})
    server = make_server(faults=faults)
    paths = {name: outbox / f"{name}.wav" for name in ("b1", "b2", "b3", "l1", "l2", "l3")}
    for path in paths.values():
        write(path, 100)

    def job(name: str, priority: Priority) -> UploadJob:
        return job_for(paths[name], f"s/{name}.wav", priority)

    run = start_sink(server, policy=UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5))
    for name in ("b1", "b2", "b3"):
        run.helper.submit(job(name, Priority.BACKFILL))
    run.helper.submit(job("l1", Priority.LIVE))
    run.helper.submit(job("l2", Priority.LIVE))
    run.helper.submit(job("b2", Priority.LIVE))  # found live while queued as backfill: one job, promoted
    run.helper.submit(job("l3", Priority.LIVE))
    wait_until(lambda: (run.helper.stats().queued_primary, run.helper.stats().queued_secondary) == (4, 2))
    gate.set()

    run.delivered(6)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    arrivals = [Path(p).name for p in faults.commands("RNTO")]
    assert arrivals == ["l1.wav", "l2.wav", "b2.wav", "l3.wav", "b1.wav", "b3.wav"]
    assert len(faults.commands("STOR")) == 6


def test_backfill_queued_counts_the_jobs_on_their_way_and_on_the_board(make_server, start_sink, outbox):
    """What the backfill scan paces itself by: every backfill job no worker took yet, wherever it is."""
    gate = threading.Event()
    server = make_server(faults=Faults(hold={"PASS": gate}))
    run = start_sink(server, policy=UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5))
    for index in range(5):
        run.helper.submit(job_for(outbox / f"b{index}.wav", f"s/b{index}.wav", Priority.BACKFILL, size=100))
    run.helper.submit(job_for(outbox / "l.wav", "s/l.wav", Priority.LIVE, size=100))
    assert run.helper.backfill_queued() >= 5  # from the moment each is submitted, not once the child has it
    wait_until(lambda: run.helper.stats().queued_secondary == 5)
    assert run.helper.backfill_queued() == 5
    gate.set()
    run.delivered(6)
    assert run.helper.backfill_queued() == 0
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test


def test_a_cut_data_connection_is_resumed_and_the_local_file_kept_until_whole(
    make_server, start_sink, outbox, ftp_root
):
    resume_gate = threading.Event()
    faults = Faults(cut_after_bytes=1_500_000, cuts=1, hold={"REST": resume_gate})
    server = make_server(faults=faults)
    data = write(outbox / "big.h264", 4_000_000)
    run = start_sink(server, jobs=(job_for(outbox / "big.h264", "v/big.h264"),), blocksize=256 * 1024)

    wait_until(lambda: faults.commands("REST"))  # the second attempt is resuming, held at REST
    partial = ftp_root / "upload/v/.big.h264.part"
    assert (outbox / "big.h264").exists()
    assert not (ftp_root / "upload/v/big.h264").exists()
    assert 1_500_000 <= partial.stat().st_size < len(data)
    assert faults.commands("REST") == [str(partial.stat().st_size)]
    resume_gate.set()

    run.delivered(1)
    assert (ftp_root / "upload/v/big.h264").read_bytes() == data
    assert not partial.exists()
    assert not (outbox / "big.h264").exists()
    assert run.outcomes(outbox / "big.h264") == ["retry", "delivered"]
    delivered = run.collected[1]
    assert delivered.bytes == len(data) - int(faults.commands("REST")[0])
    assert faults.commands("RNTO") == ["/upload/v/big.h264"]


def test_421_on_the_first_logins_shrinks_the_pool_and_everything_arrives(
    make_server, start_sink, outbox, ftp_root, caplog
):
    faults = Faults(logins_421=3)
    server = make_server(faults=faults)
    jobs = tuple(job_for(outbox / f"{i}.wav", f"a/{i}.wav") for i in range(4) if write(outbox / f"{i}.wav", 1000))
    run = start_sink(server, jobs=jobs)

    run.delivered(4)
    assert sorted(server_files(ftp_root)) == [f"/upload/a/{i}.wav" for i in range(4)]
    assert all(r.outcome == Outcome.DELIVERED for r in run.collected)  # connection trouble never fails a job
    wait_until(lambda: any("answered 421" in m for m in messages(caplog, logging.WARNING)))  # logs trail results
    assert faults.logins_421 == 0


@pytest.mark.parametrize("reply", ["452 No space left on device.", "552 Exceeded storage allocation."])
def test_no_space_on_stor_is_retried_until_delivered(make_server, start_sink, outbox, ftp_root, reply):
    server = make_server(faults=Faults(stor_replies=[reply, reply]))
    data = write(outbox / "a.wav", 5000)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))

    run.delivered(1)
    assert run.outcomes(outbox / "a.wav") == ["retry", "retry", "delivered"]
    assert [r.reply for r in run.collected[:2]] == [f"STOR: {reply}"] * 2
    assert [r.attempt for r in run.collected] == [1, 2, 3]
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert not (outbox / "a.wav").exists()


def test_550_on_one_file_parks_it_while_the_others_are_delivered(make_server, start_sink, outbox, ftp_root, caplog):
    server = make_server(faults=Faults(deny_stor=("refused",)))
    names = ["one.wav", "refused.wav", "two.wav"]
    for name in names:
        write(outbox / name, 100)
    run = start_sink(server, jobs=tuple(job_for(outbox / n, n) for n in names))

    run.delivered(2)
    run.until(lambda results: run.outcomes(outbox / "refused.wav") == ["parked", "parked"])  # retried at retry_max
    assert sorted(server_files(ftp_root)) == ["/upload/one.wav", "/upload/two.wav"]
    assert (outbox / "refused.wav").exists()
    parked = [r for r in run.collected if r.outcome == Outcome.PARKED]
    assert parked[0].reply == "STOR: 550 Permission denied by the test server."
    lines = wait_until(lambda: [m for m in messages(caplog, logging.WARNING) if "refused.wav" in m])
    assert len(lines) == 1  # one clear line; the later refusals are DEBUG
    assert "parked" in lines[0] and "550 Permission denied" in lines[0] and "retrying every" in lines[0]
    wait_until(lambda: run.helper.stats().parked == 1 or run.helper.stats().in_flight == 1)


def test_553_on_rnfr_parks_the_file_and_atomic_rename_false_delivers_it(
    make_server, start_sink, outbox, ftp_root, caplog
):
    server = make_server(faults=Faults(refuse={"RNFR": "553 Renaming not allowed."}))
    data = write(outbox / "a.wav", 100)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))

    run.until(lambda results: results)
    assert run.collected[0].outcome == Outcome.PARKED
    assert run.collected[0].reply == "RNFR: rename refused: 553 Renaming not allowed."
    assert (outbox / "a.wav").exists()
    assert not (ftp_root / "upload/a.wav").exists()
    wait_until(lambda: any("upload.atomic_rename = false" in m for m in messages(caplog, logging.WARNING)))
    run.helper.stop(1.0)

    direct = start_sink(
        server,
        policy=UploadPolicy(connections=1, atomic_rename=False, retry_base=0.05, retry_max=0.5),
        jobs=(job_for(outbox / "a.wav", "a.wav"),),
    )
    direct.delivered(1)
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert not (outbox / "a.wav").exists()


def test_a_server_without_size_or_mlst_gets_files_trusted_on_226(make_server, start_sink, outbox, ftp_root, caplog):
    server = make_server(faults=Faults(no_size=True, no_mlst=True))
    data = write(outbox / "a.wav", 1000)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))

    (result,) = run.delivered(1)
    assert result.reply == "250 Renaming ok. (size not checked)"
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert not (outbox / "a.wav").exists()
    (line,) = wait_until(lambda: [m for m in messages(caplog, logging.WARNING) if "neither SIZE nor MLST" in m])
    assert line == (
        f"127.0.0.1:{server.port} has neither SIZE nor MLST: uploads are trusted on the server's 226 reply"
        " and local files are deleted unverified (unless upload.delete_after_upload = false)"
    )


@pytest.mark.parametrize(
    ("changes", "risks"),
    [
        ({"verify_size": False}, ["verify_size = false", "deleted on the server's 226 reply alone"]),
        ({"atomic_rename": False}, ["atomic_rename = false", "cut file visible under its final name"]),
        ({"verify_size": False, "atomic_rename": False}, ["verify_size = false", "atomic_rename = false"]),
    ],
)
def test_settings_that_turn_off_a_check_are_named_in_one_warning_at_start(
    make_server, start_sink, outbox, ftp_root, caplog, changes, risks
):
    server = make_server()
    data = write(outbox / "a.wav", 1000)
    policy = UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5, **changes)
    run = start_sink(server, policy=policy, jobs=(job_for(outbox / "a.wav", "a.wav"),))
    run.delivered(1)
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    wait_until(lambda: any("delivered" in m for m in messages(caplog, logging.INFO)))  # logs trail results
    run.helper.stop(1.0)
    (line,) = [m for m in messages(caplog, logging.WARNING) if "unsafe upload settings" in m]  # once, not per session
    assert all(risk in line for risk in risks)
    assert ("verify_size" in line, "atomic_rename" in line) == ("verify_size" in changes, "atomic_rename" in changes)


def test_safe_settings_log_no_warning_at_start(make_server, start_sink, outbox, caplog):
    server = make_server()
    write(outbox / "a.wav", 10)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))
    run.delivered(1)
    wait_until(lambda: any("delivered" in m for m in messages(caplog, logging.INFO)))
    assert messages(caplog, logging.WARNING) == []


def test_a_server_stopped_and_started_again_on_the_same_port(make_server, start_sink, outbox, ftp_root, caplog):
    server = make_server()
    first = write(outbox / "first.wav", 1000)
    run = start_sink(server, jobs=(job_for(outbox / "first.wav", "first.wav"),))
    run.delivered(1)

    port = server.port
    server.stop()
    later = {name: write(outbox / name, 50_000) for name in ("second.wav", "third.wav")}
    for name in later:
        run.helper.submit(job_for(outbox / name, name))
    # Down long enough for backoffs to reach retry_max (0.5 s): about two seconds.
    wait_until(lambda: sum("connect attempt" in m for m in messages(caplog)) >= 12, timeout=20)
    assert all((outbox / name).exists() for name in later)
    assert sorted(server_files(ftp_root)) == ["/upload/first.wav"]
    assert any("cannot reach" in m for m in messages(caplog, logging.WARNING))

    make_server(port=port)
    run.delivered(3)
    assert server_files(ftp_root) == {"/upload/first.wav": first} | {f"/upload/{n}": d for n, d in later.items()}
    assert list(outbox.iterdir()) == []
    wait_until(lambda: any("again after" in m for m in messages(caplog, logging.INFO)))


def tls_server(make_server, tls_files):
    return make_server(
        FaultyTLSHandler,
        certfile=tls_files.cert_file,
        tls_control_required=True,
        tls_data_required=True,
        ssl_context=None,
    )


def test_explicit_ftps_delivers(make_server, start_sink, tls_files, outbox, ftp_root):
    server = tls_server(make_server, tls_files)
    data = write(outbox / "a.wav", 200_000)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),), tls="explicit", ca_file=tls_files.ca_file)
    run.delivered(1)
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert not (outbox / "a.wav").exists()


def test_a_wrong_ca_fails_with_a_clear_error_and_uploads_nothing(
    make_server, start_sink, tls_files, outbox, ftp_root, caplog
):
    server = tls_server(make_server, tls_files)
    write(outbox / "a.wav", 100)
    run = start_sink(
        server, jobs=(job_for(outbox / "a.wav", "a.wav"),), tls="explicit", ca_file=tls_files.other_ca_file
    )
    wait_until(lambda: [m for m in messages(caplog, logging.ERROR) if "TLS certificate verification failed" in m])
    (line,) = [m for m in messages(caplog, logging.ERROR) if "certificate" in m]
    assert f"cannot log in to 127.0.0.1:{server.port}" in line and "ftp.ca_file" in line
    assert run.helper.stop(1.0)
    assert list(ftp_root.iterdir()) == []
    assert (outbox / "a.wav").exists()
    assert run.collected == [] and run.results.empty()


def test_a_file_modified_while_uploading_is_kept_and_uploaded_again(make_server, start_sink, outbox, ftp_root):
    rename_gate = threading.Event()
    faults = Faults(hold={"RNFR": rename_gate})
    server = make_server(faults=faults)
    path = outbox / "a.wav"
    first = write(path, 50_000)
    run = start_sink(server, jobs=(job_for(path, "a.wav"),))

    wait_until(lambda: faults.commands("RNFR"))  # sent, not yet renamed
    with path.open("ab") as growing:
        growing.write(b"more samples")
    rename_gate.set()

    run.delivered(1)
    assert run.outcomes(path) == ["changed", "delivered"]
    changed = run.collected[0]
    assert changed.bytes == len(first)
    assert (ftp_root / "upload/a.wav").read_bytes() == first + b"more samples"
    assert not path.exists()
    assert len(faults.commands("STOR")) == 2


def test_bandwidth_limit_caps_the_total_rate(make_server, start_sink, outbox, ftp_root):
    server = make_server()
    paths = [outbox / f"{i}.wav" for i in range(2)]
    for path in paths:
        write(path, 60_000)
    policy = UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5, bandwidth_limit_kbps=800)  # 100 kB/s
    run = start_sink(server, policy=policy)
    wait_until(lambda: run.helper.stats().sessions == 1)  # one warm; the second opens with the work
    started = time.monotonic()
    for path in paths:
        run.helper.submit(job_for(path, path.name))
    run.delivered(2)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.8  # 120 kB at 100 kB/s, less one quarter-second burst: ~0.95 s
    assert len(server_files(ftp_root)) == 2


def test_stop_cuts_a_transfer_past_the_deadline_and_leaves_no_final_file(make_server, start_sink, outbox, ftp_root):
    faults = Faults()
    server = make_server(faults=faults)
    write(outbox / "slow.h264", 400_000)
    write(outbox / "queued.wav", 100)
    policy = UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5, bandwidth_limit_kbps=400)  # 8 s of work
    run = start_sink(
        server,
        policy=policy,
        jobs=(job_for(outbox / "slow.h264", "slow.h264"), job_for(outbox / "queued.wav", "queued.wav")),
    )
    wait_until(lambda: faults.commands("STOR") and run.helper.stats().in_flight == 1)

    began = time.monotonic()
    assert run.helper.stop(0.3) is True  # the process exited on its own, after cutting the transfer
    assert time.monotonic() - began < 5
    assert not run.helper.is_alive()
    assert (outbox / "slow.h264").exists() and (outbox / "queued.wav").exists()
    assert "RNFR" not in [cmd for cmd, _ in faults.journal]
    assert sorted(server_files(ftp_root)) == ["/upload/.slow.h264.part"]
    run.until(lambda results: results)
    assert run.collected[0].outcome == Outcome.RETRY


def test_stop_lets_a_transfer_in_flight_finish(make_server, start_sink, outbox, ftp_root):
    rename_gate = threading.Event()
    faults = Faults(hold={"RNFR": rename_gate})
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 1000)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))
    wait_until(lambda: faults.commands("RNFR"))

    stopping = threading.Thread(target=run.helper.stop, args=(10.0,))
    stopping.start()
    rename_gate.set()
    stopping.join(15)
    assert not run.helper.is_alive()
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert not (outbox / "a.wav").exists()
    assert run.until(lambda results: results)[0].outcome == Outcome.DELIVERED


def test_a_vanished_file_is_gone_without_retry_and_keep_mode_deletes_nothing(make_server, start_sink, outbox, ftp_root):
    server = make_server()
    write(outbox / "kept.wav", 10)
    policy = UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5, delete_after_upload=False)
    run = start_sink(server, policy=policy)
    run.helper.queue_upload(str(outbox / "never-there.wav"), "never-there.wav", priority=1)
    run.helper.queue_upload(str(outbox / "kept.wav"), "/upload/")  # a folder: the file keeps its name
    run.until(lambda results: len(results) >= 2)
    assert sorted((Path(r.local_path).name, r.outcome) for r in run.collected) == [
        ("kept.wav", "delivered"),
        ("never-there.wav", "gone"),
    ]
    stats = run.helper.stats()  # counted before each result is sent
    assert (stats.delivered, stats.failed) == (1, 0)  # a vanished file did not fail: as UploadStats counts
    assert run.helper.stop(1.0)
    assert (outbox / "kept.wav").exists()
    assert sorted(server_files(ftp_root)) == ["/upload/kept.wav"]
    assert run.results.empty()


def test_the_password_never_reaches_logs_results_or_reprs(make_server, start_sink, outbox, caplog, credentials):
    server = make_server(faults=Faults(deny_stor=("refused",)))
    write(outbox / "refused.wav", 10)
    write(outbox / "fine.wav", 10)
    run = start_sink(
        server, jobs=(job_for(outbox / "refused.wav", "refused.wav"), job_for(outbox / "fine.wav", "f.wav"))
    )
    run.until(lambda results: {"parked", "delivered"} <= {r.outcome for r in results})
    wrong = start_sink(server, password="not-" + credentials.password)
    wait_until(lambda: any("cannot log in" in m for m in messages(caplog, logging.ERROR)))
    run.helper.stop(1.0)
    wrong.helper.stop(1.0)

    texts = [repr(run.helper), repr(wrong.helper), str(run.helper.stats())]
    texts += [repr(r) for r in run.collected]
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.extend(str(value) for value in record.__dict__.values())
    assert texts
    assert not [t for t in texts if credentials.password in t]


def test_idle_sessions_send_noop(make_server, start_sink):
    faults = Faults()
    server = make_server(faults=faults)
    policy = UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5, idle_noop_seconds=0.1)
    start_sink(server, policy=policy)
    wait_until(lambda: len(faults.commands("NOOP")) >= 2)
    assert [cmd for cmd, _ in faults.journal].count("PASS") == 1  # the same session, kept alive


def test_idle_sessions_close_down_to_one_and_open_again_as_work_arrives(make_server, start_sink, outbox, ftp_root):
    """Stations share servers: sessions beyond the warm one close when idle, and come back for a backlog."""
    faults = Faults()
    server = make_server(faults=faults)
    policy = UploadPolicy(connections=3, retry_base=0.05, retry_max=0.5, idle_close_seconds=0.3)
    run = start_sink(server, policy=policy)
    wait_until(lambda: run.helper.stats().sessions == 1)
    assert faults.commands("PASS") and len(faults.commands("PASS")) == 1  # one warm session, nothing to do yet
    for round_ in range(2):
        jobs = [job_for(outbox / f"{round_}-{i}.wav", f"{round_}-{i}.wav", size=200_000) for i in range(9)]
        for job in jobs:
            run.helper.submit(job)
        wait_until(lambda: run.helper.stats().sessions > 1)  # grown for the backlog
        run.delivered(9 * (round_ + 1))
        wait_until(lambda: run.helper.stats().sessions == 1)  # the idle ones closed; one stays warm
    assert len(server_files(ftp_root)) == 18
    time.sleep(0.5)  # longer than idle_close: the last session stays open
    assert run.helper.stats().sessions == 1


def test_sigterm_finishes_the_transfer_in_flight_then_exits(make_server, start_sink, outbox, ftp_root):
    rename_gate = threading.Event()
    faults = Faults(hold={"RNFR": rename_gate})
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 1000)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))
    wait_until(lambda: faults.commands("RNFR"))

    os.kill(run.helper.pid, signal.SIGTERM)
    rename_gate.set()
    run.helper.join(10)
    assert run.helper.exitcode == 0
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert run.until(lambda results: results)[0].outcome == Outcome.DELIVERED


def test_stop_before_start_and_submit_after_stop_are_harmless(ftp_server, credentials, outbox):
    helper = UploadHelper(params_for(ftp_server, credentials))
    assert helper.stop() is True
    helper.submit(UploadJob(str(outbox / "a.wav"), "a.wav", 1, 1))
    assert helper.stats().queued_primary == 0
    assert "not running" not in repr(helper) and "stopped" in repr(helper)


@pytest.mark.parametrize("how", ["rewritten in place", "replaced by a rename"])
def test_a_file_rewritten_with_the_same_size_and_mtime_is_uploaded_again_not_deleted(
    make_server, start_sink, outbox, ftp_root, how
):
    rename_gate = threading.Event()
    faults = Faults(hold={"RNFR": rename_gate})
    server = make_server(faults=faults)
    path = outbox / "a.wav"
    write(path, 50_000)
    before = path.stat()
    run = start_sink(server, jobs=(job_for(path, "a.wav"),))

    wait_until(lambda: faults.commands("RNFR"))  # the first version is sent, not yet renamed
    second = os.urandom(50_000)
    if how == "rewritten in place":
        path.write_bytes(second)
    else:
        (outbox / "a.wav.tmp").write_bytes(second)
        os.replace(outbox / "a.wav.tmp", path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as before: only ctime/inode tell
    rename_gate.set()

    run.delivered(1)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    assert run.outcomes(path) == ["changed", "delivered"]
    assert (ftp_root / "upload/a.wav").read_bytes() == second
    assert not path.exists()


def test_a_file_open_for_writing_is_kept_after_its_upload(make_server, start_sink, outbox, ftp_root, caplog):
    server = make_server()
    path = outbox / "a.wav"
    data = write(path, 5000)
    with path.open("ab") as writer:  # a sensor still holds it open
        run = start_sink(server, jobs=(job_for(path, "a.wav"),))
        (result,) = run.delivered(1)
        writer.write(b"late samples")
    assert result.reply.startswith("250")
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert path.read_bytes() == data + b"late samples"  # nothing written after the upload was lost
    line = wait_until(lambda: [m for m in messages(caplog, logging.INFO) if m.startswith("kept ")])
    assert line == [f"kept {path} in the outbox: it is open for writing"]
    assert not [m for m in messages(caplog) if m.startswith("removed ") or "removed from the outbox" in m]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("appended after the final", "it is larger than the .final (61 B > 40 B)"),
        ("same size, other lines", "its content is not the beginning of the .final's"),
        ("touched after the final", "it was modified after the .final was written"),
        ("open for writing", "it is open for writing"),
    ],
)
def test_a_bare_csv_the_final_does_not_hold_entirely_is_kept(
    make_server, start_sink, outbox, ftp_root, caplog, case, reason
):
    server = make_server()
    bare, final = outbox / "temp/s@2024-05-01.csv", outbox / "temp/s@2024-05-01.csv.final"
    bare.parent.mkdir()
    day = b"t,1\n" * 10
    bare.write_bytes(day)
    final.write_bytes(day)
    old = final.stat().st_mtime_ns - 10**9
    os.utime(final, ns=(old, old))
    expected_bare = day
    if case == "appended after the final":
        expected_bare = day + b"late,2\n" * 3
        bare.write_bytes(expected_bare)
    elif case == "same size, other lines":
        expected_bare = b"t,2\n" * 10
        bare.write_bytes(expected_bare)
        os.utime(bare, ns=(old - 1, old - 1))
    elif case == "touched after the final":
        os.utime(bare, ns=(old + 1, old + 1))
    else:
        os.utime(bare, ns=(old, old))
    writer = bare.open("ab") if case == "open for writing" else None
    try:
        run = start_sink(server, jobs=(job_for(final, "s/2024-05-01/temp/s@2024-05-01.csv"),))
        run.delivered(1)
        # the last line: the delivery of the .final, with its removal
        wait_until(lambda: [m for m in messages(caplog) if m.startswith(f"delivered {final} ") and "removed" in m])
        line = [m for m in messages(caplog, logging.WARNING) if m.startswith("kept ")]
    finally:
        if writer is not None:
            writer.close()
    assert (ftp_root / "upload/s/2024-05-01/temp/s@2024-05-01.csv").read_bytes() == day
    assert not final.exists()
    assert bare.read_bytes() == expected_bare
    assert line == [
        f"kept {bare} beside the delivered s@2024-05-01.csv.final: {reason}; the server's copy may lack"
        " lines of it (left for a person to check)"
    ]


@pytest.mark.parametrize(
    ("fault", "stale_size"),
    [
        ({"stor_replies": ["452 No space left on device."]}, 600),
        ({"stor_replies": ["452 No space left on device."]}, 1000),
        # MKD busy for good, and the CWD that would show the folder exists busy once: the folder step fails
        ({"refuse": {"MKD": "450 Busy, try later."}, "once": {"CWD": ["450 Busy, try later."]}}, 1000),
        ({"once": {"EPSV": ["421 Service not available, closing control connection."]}}, 600),
    ],
    ids=["452 on STOR, shorter part", "452 on STOR, part of the same size", "450 on MKD", "421 before STOR"],
)
def test_a_part_file_this_upload_never_wrote_is_not_resumed_after_a_failure_before_any_byte(
    make_server, start_sink, outbox, ftp_root, fault, stale_size
):
    faults = Faults(**fault)
    server = make_server(faults=faults)
    folder = ftp_root / "upload/st/2024-01-01/audio"
    folder.mkdir(parents=True)
    (folder / ".x.wav.part").write_bytes(b"OLD" * (stale_size // 3) + b"O" * (stale_size % 3))  # someone else's
    data = write(outbox / "x.wav", 1000)
    # One session, which logs in before it takes the job: the folder step is the delivery's, where the fault
    # must hit (a worker that takes its job first asks its folders in the login's flight, not the job's).
    one = dataclasses.replace(FAST, connections=1)
    run = start_sink(server, policy=one, jobs=(job_for(outbox / "x.wav", "st/2024-01-01/audio/x.wav"),))

    run.delivered(1)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    assert run.outcomes(outbox / "x.wav") == ["retry", "delivered"]
    assert (folder / "x.wav").read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == ["x.wav"]
    assert faults.commands("REST") == [] and faults.commands("APPE") == []
    assert faults.commands("STOR")[-1] == "/upload/st/2024-01-01/audio/.x.wav.part"
    assert not (outbox / "x.wav").exists()


@pytest.mark.parametrize("meanwhile", ["nothing", "the .part replaced by other bytes"])
def test_a_refused_rename_keeps_the_whole_part_and_the_next_try_only_renames_it(
    make_server, start_sink, outbox, ftp_root, meanwhile
):
    faults = Faults(once={"RNFR": ["553 Renaming not allowed."]})
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 200_000)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "a.wav"),))

    run.until(lambda results: results)
    assert run.outcomes(outbox / "a.wav") == ["parked"]
    part = ftp_root / "upload/.a.wav.part"
    assert part.read_bytes() == data  # kept whole on the server
    if meanwhile != "nothing":
        part.write_bytes(b"not ours" * 1000)
    run.delivered(1)  # tried again after retry_max (0.5 s)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    assert run.outcomes(outbox / "a.wav") == ["parked", "delivered"]
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert not part.exists() and not (outbox / "a.wav").exists()
    stores = faults.commands("STOR")
    if meanwhile == "nothing":
        assert stores == ["/upload/.a.wav.part"]  # sent once; the second try only renamed
        assert run.collected[1].bytes == 0
    else:
        assert stores == ["/upload/.a.wav.part"] * 2  # not the size it had: sent again in full
        assert run.collected[1].bytes == len(data)
    assert faults.commands("REST") == []
    assert faults.commands("RNFR") == ["/upload/.a.wav.part"] * 2


@pytest.mark.parametrize("sizes", [(100_000, 100_000), (100_000, 90_000)], ids=["same size", "other size"])
def test_two_local_files_for_one_remote_path_deliver_one_and_park_the_other(
    make_server, start_sink, outbox, ftp_root, caplog, sizes
):
    faults = Faults()
    server = make_server(faults=faults)
    one, two = outbox / "audio/hive1/x.wav", outbox / "audio/hive2/x.wav"
    first, second = write(one, sizes[0]), write(two, sizes[1])
    remote = "/upload/st/2024-05-01/audio/x.wav"  # both map here (the mapping drops the hive folder)
    run = start_sink(server, jobs=(job_for(one, remote), job_for(two, remote)))

    run.until(lambda results: run.outcomes(two) == ["parked", "parked"])  # refused, and again after retry_max
    assert run.outcomes(one) == ["delivered"]
    assert server_files(ftp_root) == {remote: first}
    assert not one.exists()
    assert two.read_bytes() == second  # kept: nothing of it was lost
    journal = [(cmd, arg) for cmd, arg in faults.journal if cmd in ("STOR", "RNTO", "DELE")]
    part = "/upload/st/2024-05-01/audio/.x.wav.part"
    assert journal[:4] == [("STOR", part), ("RNTO", remote), ("STOR", part), ("DELE", part)]  # one at a time
    assert faults.commands("RNTO") == [remote]  # the second file was never renamed onto the first
    line = wait_until(lambda: [m for m in messages(caplog, logging.WARNING) if m.startswith("refusing")])
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    assert len(line) == 1 and line[0].startswith(
        f"refusing to overwrite {remote} ({sizes[0]} B) with a different file {two} ({sizes[1]} B): parked,"
        " the local file stays in the outbox"
    )


@pytest.mark.parametrize("same_size", [True, False], ids=["same size: a copy a crash left", "other size"])
def test_a_file_already_on_the_server_is_replaced_only_by_one_of_its_size(
    make_server, start_sink, outbox, ftp_root, same_size
):
    server = make_server()
    data = write(outbox / "a.wav", 5000)
    (ftp_root / "upload/s").mkdir(parents=True)
    there = data if same_size else b"an older, different file"
    (ftp_root / "upload/s/a.wav").write_bytes(there)
    run = start_sink(server, jobs=(job_for(outbox / "a.wav", "s/a.wav"),))

    run.until(lambda results: results)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    if same_size:  # crashed between the rename and the local delete, then restarted: sent again
        assert run.outcomes(outbox / "a.wav") == ["delivered"]
        assert not (outbox / "a.wav").exists()
    else:
        assert run.outcomes(outbox / "a.wav") == ["parked"]
        assert run.collected[0].reply == (
            f"refusing to overwrite /upload/s/a.wav ({len(there)} B) with a different file {outbox / 'a.wav'} (5000 B)"
        )
        assert (outbox / "a.wav").read_bytes() == data
    assert server_files(ftp_root) == {"/upload/s/a.wav": data if same_size else there}


def test_with_keep_mode_a_changed_file_overwrites_its_own_earlier_copy(make_server, start_sink, outbox, ftp_root):
    server = make_server()
    path = outbox / "a.wav"
    write(path, 1000)
    policy = UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5, delete_after_upload=False)
    run = start_sink(server, policy=policy, jobs=(job_for(path, "s/a.wav"),))
    run.delivered(1)
    with path.open("ab") as more:
        more.write(b"more samples")
    run.helper.submit(job_for(path, "s/a.wav"))
    run.delivered(2)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    assert run.outcomes(path) == ["delivered", "delivered"]
    assert server_files(ftp_root) == {"/upload/s/a.wav": path.read_bytes()}


def test_a_final_replaces_the_copy_its_bare_csv_left_under_the_same_name(make_server, start_sink, outbox, ftp_root):
    server = make_server()
    bare, final = outbox / "s@2024-05-01.csv", outbox / "s@2024-05-01.csv.final"
    bare.write_bytes(b"t,1\n")
    run = start_sink(server)
    run.helper.queue_upload(str(bare), "s/2024-05-01/temp/s@2024-05-01.csv")  # the original API uploads a bare .csv
    run.delivered(1)
    final.write_bytes(b"t,1\nt,2\n")
    run.helper.queue_upload(str(final), "s/2024-05-01/temp/s@2024-05-01.csv")
    run.delivered(2)
    run.helper.stop(1.0)  # its last log lines are replayed now, inside the test
    assert server_files(ftp_root) == {"/upload/s/2024-05-01/temp/s@2024-05-01.csv": b"t,1\nt,2\n"}
    assert not final.exists() and not bare.exists()


def test_a_delivered_and_removed_file_is_one_log_line(make_server, start_sink, outbox, ftp_root, caplog):
    """The usual delivery is one INFO line naming the file, where it went and that it left the outbox: each
    record costs the sink and the parent a formatting, a pickling and a write (two lines per file before)."""
    server = make_server()
    paths = [outbox / f"a{i}.wav" for i in range(3)]
    for path in paths:
        write(path, 2000)
    run = start_sink(server, jobs=tuple(job_for(path, path.name) for path in paths))
    run.delivered(3)
    run.helper.stop(5.0)  # its last log lines are replayed now, inside the test
    for path in paths:
        lines = [m for m in messages(caplog, logging.INFO) if str(path) in m]
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"delivered {path} -> {path.name} (2000 B, "), lines
        assert lines[0].endswith(" s), removed from the outbox (verified on the server)"), lines
        assert not path.exists()


@pytest.mark.parametrize("with_results", [True, False], ids=["results", "no-results"])
def test_a_log_queue_gets_the_delivered_record_with_its_fields_with_or_without_results(
    make_server, credentials, outbox, with_results, caplog
):
    """The usual delivery's line is made in the parent from the result (`pipeline.sink.delivered_line`): a caller's
    `log_queue` still gets it as a record with the text and the extra fields the sink gave it, one per file, and
    gets it when no results queue was asked for too (the sink sends the result up for its line alone)."""
    caplog.set_level(logging.INFO, logger="beemon.sink")  # the level the sink logs at is the parent's
    server = make_server()
    path = outbox / "a.wav"
    write(path, 1500)
    records: queue.Queue = UploadHelper.new_queue()
    results = UploadHelper.new_queue() if with_results else None
    helper = UploadHelper(params_for(server, credentials), FAST, results, log_queue=records)
    helper.submit(job_for(path, "s/a.wav"))
    helper.start()
    try:
        wait_until(lambda: not path.exists(), timeout=15)
        if results is not None:
            result = results.get(timeout=15)
            assert (result.local_path, result.outcome, result.bytes) == (str(path), Outcome.DELIVERED, 1500)
    finally:
        helper.stop(5.0)
    delivered = []
    while True:
        try:
            record = records.get(timeout=0.2)
        except queue.Empty:
            break
        if record.getMessage().startswith("delivered "):
            delivered.append(record)
    assert len(delivered) == 1, [r.getMessage() for r in delivered]
    record = delivered[0]
    assert (record.name, record.levelno) == ("beemon.sink", logging.INFO)
    assert record.getMessage().startswith(f"delivered {path} -> s/a.wav (1500 B, ")
    assert record.getMessage().endswith(" s), removed from the outbox (verified on the server)")
    assert (record.file, record.remote, record.size, record.attempt, record.outcome) == (
        str(path),
        "s/a.wav",
        1500,
        1,
        "delivered",
    )
    assert record.reply.startswith("250"), record.reply
    assert results is None or results.empty()  # one result per attempt: not one for the line and one more


def _full_queue() -> queue.Queue:
    records: queue.Queue = queue.Queue(maxsize=1)
    records.put_nowait("a line the caller has not read yet")
    return records


def _closed_queue() -> queue.Queue:
    records = UploadHelper.new_queue()
    records.close()
    return records


@pytest.mark.parametrize("make_records", [_full_queue, _closed_queue], ids=["full", "closed"])
def test_a_log_queue_that_takes_nothing_more_loses_no_result(make_server, credentials, outbox, caplog, make_records):
    """A caller's `log_queue` that is full (a bounded queue its reader is behind on) or closed loses log lines,
    never results.

    The delivered line is made in the parent from the result it rides with (`pipeline.sink.delivered_line`): the
    record's `put_nowait` raising (`queue.Full`, or `ValueError` once closed) must not keep that result from the caller's `results` queue, or
    its caller never hears that the file was delivered (the original API's users release their jobs on results).
    """
    caplog.set_level(logging.INFO, logger="beemon.sink")  # the sink logs the delivered line at INFO
    server = make_server()
    path = outbox / "a.wav"
    write(path, 1500)
    results = UploadHelper.new_queue()
    helper = UploadHelper(params_for(server, credentials), FAST, results, log_queue=make_records())
    helper.submit(job_for(path, "s/a.wav"))
    helper.start()
    try:
        wait_until(lambda: not path.exists(), timeout=15)
        try:
            result = results.get(timeout=10)
        except queue.Empty:
            raise AssertionError("the file was delivered and removed, but its result never reached `results`") from None
        assert (result.local_path, result.outcome) == (str(path), Outcome.DELIVERED)
    finally:
        helper.stop(5.0)


class _SlowResults(queue.Queue):
    """A caller's results queue whose first `put` takes `seconds` (a reader busy with the result before)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def put(self, item: object, block: bool = True, timeout: float | None = None) -> None:
        if self.seconds:
            seconds, self.seconds = self.seconds, 0.0
            time.sleep(seconds)
        super().put(item, block, timeout)


def test_the_delivered_line_bears_the_time_of_the_delivery_not_of_its_reading(make_server, credentials, outbox, caplog):
    """A delivered line says when the file went (its record's time), as every other line of the sink does.

    The parent reads the sink's reports one after the other: while it is busy with one result (here a caller's
    `results.put` that takes 2 s), a file delivered meanwhile must still be logged with the time it was delivered
    and removed, not the time its report was read (`pipeline.sink.delivered_line.record` stamps the latter).
    """
    caplog.set_level(logging.INFO, logger="beemon.sink")
    server = make_server()
    paths = [outbox / "a.wav", outbox / "b.wav"]
    for path in paths:
        write(path, 1500)
    records: queue.Queue = queue.Queue()
    helper = UploadHelper(params_for(server, credentials), FAST, _SlowResults(2.0), log_queue=records)
    for path in paths:
        helper.submit(job_for(path, f"s/{path.name}"))
    helper.start()
    gone_at: dict[str, float] = {}
    try:
        deadline = time.monotonic() + 20
        while len(gone_at) < len(paths) and time.monotonic() < deadline:
            for path in paths:
                if str(path) not in gone_at and not path.exists():
                    gone_at[str(path)] = time.time()
            time.sleep(0.01)
        assert len(gone_at) == len(paths), gone_at
        lines: dict[str, logging.LogRecord] = {}
        wait_until(lambda: _delivered_records(records, lines) >= len(paths), timeout=15)
    finally:
        helper.stop(5.0)
    for path, record in lines.items():
        assert record.created <= gone_at[path] + 0.5, (path, record.created - gone_at[path])


def _delivered_records(records: queue.Queue, into: dict[str, logging.LogRecord]) -> int:
    while True:
        try:
            record = records.get_nowait()
        except queue.Empty:
            return len(into)
        if record.getMessage().startswith("delivered "):
            into[record.file] = record
