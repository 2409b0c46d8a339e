"""The lean way's bookkeeping per batch, and its local reads, keep the promises of a delivery one by one (issue 17).

The bookkeeping thread settles the files a loop's turn verified together (`DeliveryStep.lean_delivered_many`):
each local file is still compared and deleted on its own, under its lease; the board and the counts hear
of the delivered ones in one go; their results go in the files' order, each after the counts it changed.
Batches begin at most every `BOOKS_SPACING` while no worker waits for them (one fsync for many files).
The lean flow reads a small file without an `fstat` of its own: a file written to between its look and
its read still never goes up cut or with bytes the look did not see.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from operators.model import UploadJob
from pipeline.sink import burst_loop
from pipeline.sink.board import JobBoard
from pipeline.sink.delivery import DeliveryStep
from pipeline.sink.model import Outcome, SinkCounters, SinkStats, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from pipeline.transport import Delivered
from pipeline.transport.bandwidth import LiveFirst
from tests.helpers import params_for, wait_until, write


def test_a_batch_of_verified_files_is_settled_and_reported_in_order_with_its_counts_never_behind(tmp_path: Path):
    counters = SinkCounters()
    board = JobBoard(0.05, 0.5, counters=counters)
    results: list[tuple[UploadResult, SinkStats]] = []  # each result, and the counts when it went up
    step = DeliveryStep(
        UploadPolicy(), board, LiveFirst(), threading.Event(), lambda r: results.append((r, counters.snapshot()))
    )
    step.counters = counters
    names = ["a.wav", "b.wav", "c.wav", "d.wav"]
    for name in names:
        path = tmp_path / name
        write(path, 100)
        board.put(UploadJob(str(path), f"/upload/{name}", 100, path.stat().st_mtime_ns))
    batch = []
    for _ in names:
        file = step.lean_file(board.take(timeout=0))
        assert file is not None
        batch.append((file, Delivered(100, 0, "250 renamed", True, 0.01, None, "size")))
    (tmp_path / "c.wav").write_bytes(b"written again after its upload was verified")

    step.lean_delivered_many(batch, recorded=False)

    assert [(os.path.basename(r.local_path), r.outcome) for r, _ in results] == [
        ("a.wav", Outcome.DELIVERED),
        ("b.wav", Outcome.DELIVERED),
        ("c.wav", Outcome.CHANGED),
        ("d.wav", Outcome.DELIVERED),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.wav"]  # kept: it is not what went up
    # The counts each result went up with include that result's own change (never behind it).
    assert [(s.delivered, s.failed) for _, s in results] == [(2, 0), (2, 0), (2, 1), (3, 1)]
    final = counters.snapshot()
    # c.wav too was checked on the server (by size) before it was found changed here
    assert (final.delivered, final.failed, final.verified_size, final.in_flight) == (3, 1, 4, 0)
    assert final.queued_primary == 1  # c goes again, as it is now
    assert {r.reply for r, _ in results if r.outcome == Outcome.DELIVERED} == {"250 renamed"}
    assert all(r.attempt == 1 and r.bytes == 100 for r, _ in results)


def _sink_with_a_file_written_after_its_look(make_server, outbox, credentials, change):
    """A run of small files over one session; `change(path)` is applied to f3.wav right after the lean way looked
    at it (`DeliveryStep.lean_file`), before the flow reads it. Returns (the file's bytes now, results, server)."""
    server = make_server()
    names = [f"f{i}.wav" for i in range(6)]
    for i, name in enumerate(names):
        write(outbox / name, 1000 + i)
    results: list[UploadResult] = []
    sink = Sink(
        params_for(server, credentials), UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5), results.append
    )
    looked: list[str] = []
    original = sink.step.lean_file

    def lean_file(ticket):
        file = original(ticket)
        if file is not None and ticket.path.endswith("f3.wav") and not looked:
            looked.append(ticket.path)
            change(Path(ticket.path))
        return file

    sink.step.lean_file = lean_file  # type: ignore[method-assign]
    for name in names:
        path = outbox / name
        sink.put(UploadJob(str(path), f"/upload/{name}", path.stat().st_size, path.stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(
            lambda: {os.path.basename(r.local_path) for r in results if r.outcome == Outcome.DELIVERED} == set(names),
            timeout=30,
        )
    finally:
        sink.stop(5)
    assert looked, "f3.wav never went the lean way: the test proves nothing"
    return results


def test_a_small_file_that_grew_after_the_lean_look_goes_up_whole_as_it_is_now(
    make_server, ftp_root, outbox, credentials
):
    grown = b"".join(bytes([i % 251]) for i in range(1500))
    results = _sink_with_a_file_written_after_its_look(
        make_server, outbox, credentials, lambda path: path.write_bytes(grown)
    )
    assert (ftp_root / "upload" / "f3.wav").read_bytes() == grown
    assert [r.outcome for r in results if r.local_path.endswith("f3.wav")] == [Outcome.DELIVERED]
    assert not (outbox / "f3.wav").exists()


def test_a_small_file_cut_short_after_the_lean_look_goes_up_as_it_is_now(make_server, ftp_root, outbox, credentials):
    results = _sink_with_a_file_written_after_its_look(
        make_server, outbox, credentials, lambda path: path.write_bytes(b"short now")
    )
    assert (ftp_root / "upload" / "f3.wav").read_bytes() == b"short now"
    assert [r.outcome for r in results if r.local_path.endswith("f3.wav")] == [Outcome.DELIVERED]
    assert not (outbox / "f3.wav").exists()


class _Step:
    """What the bookkeeping thread needs of a `DeliveryStep`: here it notes each batch and when it began."""

    manifests = None

    def __init__(self) -> None:
        self.batches: list[tuple[float, list[str]]] = []

    def lean_delivered_many(self, files, *, recorded):
        self.batches.append((time.monotonic(), [file for file, _ in files]))

    def unexpected(self, ticket, error):  # pragma: no cover - a bug in the test
        raise AssertionError(error)


def test_the_bookkeeping_batches_files_under_load_but_never_keeps_a_waiting_worker(monkeypatch):
    """Files verified within `BOOKS_SPACING` of the last batch wait for the next one (one fsync for all
    of them), unless a worker waits for its loan's files: then the batch begins at once."""
    monkeypatch.setattr(burst_loop, "BOOKS_SPACING", 0.5)
    step = _Step()
    books = burst_loop._Books(step)  # type: ignore[arg-type]
    first, second = burst_loop.Loan(None, None), burst_loop.Loan(None, None)  # type: ignore[arg-type]
    books.add([(first, "a", None)])  # type: ignore[list-item]
    books.settled(first)  # after a quiet spell: at once
    books.add([(second, "b", None)])  # type: ignore[list-item]
    books.add([(second, "c", None)])  # type: ignore[list-item]
    wait_until(lambda: len(step.batches) == 2, timeout=10)
    (began_a, a), (began_bc, bc) = step.batches
    assert (a, bc) == (["a"], ["b", "c"])  # under load: together
    assert began_bc - began_a >= 0.5
    books.add([(first, "d", None)])  # type: ignore[list-item]
    asked = time.monotonic()
    books.settled(first)  # a worker waits: no spacing
    assert time.monotonic() - asked < 0.4
    assert step.batches[-1][1] == ["d"] and first.books == second.books == 0
    assert books.hurried == 1  # that batch, and no other, began before its spacing was out
