"""The lean loop meets an error it did not foresee (review of the `burst` branch).

The loop's own rule (`BurstLoop._run`): "a bug: every session goes back to its worker, which reports
the file". What such an error must never do: leave a job taken and never finished (its file waits
until the next start), or leave a worker waiting for ever on a verified file's bookkeeping.

Scenario: one session; the first small file makes the folder (full path); then A is uploaded the lean
way with B right behind it on the board, so that A's run takes B as its next file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from operators.model import UploadJob
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write


def _job(local: Path, remote_name: str, size: int, mtime_ns: int) -> UploadJob:
    return UploadJob(str(local), f"/upload/{remote_name}", size, mtime_ns)


def _run_a_then_b(make_server, outbox: Path, credentials, b_local: Path, b_remote: str, b_job_size: int):
    """Returns (results, faults, sink, a_data); the sink is still running (the caller stops it)."""
    faults = Faults()
    server = make_server(faults=faults)
    first = outbox / "first.wav"
    first_data = write(first, 1500)
    a = outbox / "a.wav"
    a_data = write(a, 2000)
    results: list[UploadResult] = []
    sink = Sink(
        params_for(server, credentials), UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5), results.append
    )
    sink.put(_job(first, "first.wav", len(first_data), first.stat().st_mtime_ns))
    sink.start()
    wait_until(lambda: len(results) == 1, timeout=30)
    # A first (the board is first in, first out), B right behind: A's run takes B during A's rename
    sink.put(_job(a, "a.wav", len(a_data), a.stat().st_mtime_ns))
    sink.put(UploadJob(str(b_local), f"/upload/{b_remote}", b_job_size, 1))
    return results, faults, sink, a_data


def test_a_next_file_that_cannot_be_looked_at_gets_a_result_and_a_is_delivered(
    make_server, ftp_root, outbox, credentials
):
    blocker = outbox / "blocker"
    blocker.write_bytes(b"not a folder")  # stat(blocker/b.wav) raises NotADirectoryError (as EIO on a bad card)
    results, _faults, sink, a_data = _run_a_then_b(make_server, outbox, credentials, blocker / "b.wav", "b.wav", 1000)
    try:
        wait_until(lambda: any(r.local_path == str(blocker / "b.wav") for r in results), timeout=5)
        wait_until(
            lambda: any(r.local_path == str(outbox / "a.wav") and r.outcome == Outcome.DELIVERED for r in results),
            timeout=5,
        )
    finally:
        sink.stop(1)
    assert (ftp_root / "upload" / "a.wav").read_bytes() == a_data
    assert not (outbox / "a.wav").exists()
    # A's own attempts are never blamed on B's path
    assert not any(r.local_path == str(outbox / "a.wav") and "blocker" in r.reply for r in results)


class _Printable(logging.Filter):
    """A record's text with its surrogates escaped: pytest-xdist cannot send a report holding them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = record.getMessage().encode("utf-8", "backslashreplace").decode("utf-8"), ()
        return True


@pytest.fixture
def printable_logs() -> Iterator[None]:
    printable, handlers = _Printable(), list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(printable)
    yield
    for handler in handlers:
        handler.removeFilter(printable)


def test_a_verified_file_is_settled_even_when_the_loop_fails_on_the_next(
    make_server, ftp_root, outbox, credentials, caplog, printable_logs
):
    """B's name is not UTF-8 (a file copied in from elsewhere: its byte 0xE9 is a surrogate in Python's path):
    no FTP command in the client's encoding can carry it. The loop meets that while starting B, right after
    A was verified in the same turn: A's bookkeeping must still come, and B get a result."""
    b = Path(os.fsdecode(bytes(outbox) + b"/b\xe9.wav"))
    b_data = write(b, 1000)
    results, _faults, sink, a_data = _run_a_then_b(make_server, outbox, credentials, b, b.name, len(b_data))
    try:
        wait_until(
            lambda: any(r.local_path == str(outbox / "a.wav") and r.outcome == Outcome.DELIVERED for r in results),
            timeout=5,
        )
        wait_until(lambda: any(r.local_path == str(b) for r in results), timeout=5)
    finally:
        stopped = sink.stop(1)
    assert stopped  # no worker left hanging
    assert (ftp_root / "upload" / "a.wav").read_bytes() == a_data
    assert not (outbox / "a.wav").exists()
    assert b.exists()  # B cannot go: it stays
    # the flow itself hands B to the full path (`Flow._send`), not the loop's last resort
    assert not [r for r in caplog.records if "lean upload loop error" in r.getMessage()]


def test_a_stop_during_lean_runs_loses_nothing_and_ends_within_its_deadline(make_server, ftp_root, outbox, credentials):
    """Four sessions' lean runs of small files, stopped halfway: the transfers in flight finish within the
    deadline, and every file is either local still or byte-identical at its final name (never neither)."""
    faults = Faults(stall={"RNTO": 0.3})  # one rename held: a stop finds a run mid-file
    server = make_server(faults=faults)
    names = [f"s{i:03}.wav" for i in range(200)]
    contents = {name: write(outbox / name, 900 + i) for i, name in enumerate(names)}
    results: list[UploadResult] = []
    sink = Sink(params_for(server, credentials), UploadPolicy(connections=4), results.append)
    for name in names:
        sink.put(_job(outbox / name, name, len(contents[name]), (outbox / name).stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) >= 20, timeout=30)
    finally:
        stopped = sink.stop(5)
    assert stopped
    for name in names:
        remote, local = ftp_root / "upload" / name, outbox / name
        assert local.exists() or remote.read_bytes() == contents[name], name
        if remote.exists():
            assert remote.read_bytes() == contents[name], name
    delivered = {r.local_path for r in results if r.outcome == Outcome.DELIVERED}
    assert delivered == {str(outbox / n) for n in names if not (outbox / n).exists()}
    assert len(delivered) < len(names)  # the stop came halfway


def test_a_bookkeeping_thread_that_cannot_start_holds_no_worker(
    make_server, ftp_root, outbox, credentials, monkeypatch
):
    """A Pi short of memory cannot start the lean bookkeeping's thread once: the verified file is not left
    counted for a thread that never runs (its worker waiting for ever); it stays local and is delivered again,
    and the next files go on (review of the eighth session)."""
    import threading

    real_start = threading.Thread.start
    refused: list[str] = []

    def start(self: threading.Thread) -> None:
        if self.name == "ftp-lean-books" and not refused:
            refused.append(self.name)
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    b = outbox / "b.wav"
    b_data = write(b, 2500)
    results, _faults, sink, a_data = _run_a_then_b(make_server, outbox, credentials, b, "b.wav", len(b_data))
    try:
        delivered = {str(outbox / "a.wav"), str(b)}
        wait_until(lambda: delivered <= {r.local_path for r in results if r.outcome == Outcome.DELIVERED}, timeout=30)
    finally:
        sink.stop(5)
    assert refused
    assert (ftp_root / "upload" / "a.wav").read_bytes() == a_data
    assert (ftp_root / "upload" / "b.wav").read_bytes() == b_data
    assert not (outbox / "a.wav").exists() and not b.exists()
