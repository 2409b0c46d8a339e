"""A delivered file's bookkeeping (manifest line, local delete, result) overlaps the next file's first round trip.

On a link every flight waits a round trip; what the worker does between the rename's replies and
the next file's STOR adds to each file. With the next job taken during the rename, that work is
done once the next STOR and its bytes are on their way, and never skipped. Files larger than the
lean path's `BURST_MAX` go the full path, whose overlap the first test pins; small files go the
lean way, where a thread of its own does the bookkeeping while the loop sends the next file (the
last test: a bookkeeping held up holds no STOR back).
"""

from __future__ import annotations

import itertools
import os
import threading
import time

import pytest

from operators.model import UploadJob
from pipeline.ftp.burst import BURST_MAX
from pipeline.sink.burst_loop import BOOKS_SPACING
from pipeline.sink.manifest import Manifests
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write

#: How long a result waits for the next file's STOR to reach the server (it is on its way, or never comes).
STOR_SEEN_WITHIN = 1.0


def test_each_result_but_the_last_comes_once_the_next_stor_is_on_its_way(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    names = [f"f{i}.wav" for i in range(4)]
    contents = {name: write(outbox / name, BURST_MAX + 2000 + i) for i, name in enumerate(names)}  # the full path
    seen: dict[str, tuple[bool, bool]] = {}  # name -> (the next STOR reached the server, the local copy is gone)
    results: list[UploadResult] = []

    def emit(result: UploadResult) -> None:
        name = os.path.basename(result.local_path)
        following = names.index(name) + 1
        if following < len(names):
            deadline = time.monotonic() + STOR_SEEN_WITHIN
            while len(faults.commands("STOR")) <= following and time.monotonic() < deadline:
                time.sleep(0.005)
        seen[name] = (len(faults.commands("STOR")) > following, not (outbox / name).exists())
        results.append(result)

    sink = Sink(params_for(server, credentials), UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5), emit)
    for name, data in contents.items():
        sink.put(UploadJob(str(outbox / name), f"/upload/{name}", len(data), (outbox / name).stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) == len(names), timeout=30)
    finally:
        sink.stop(5)
    assert [os.path.basename(r.local_path) for r in results] == names
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert seen == {name: (name != names[-1], True) for name in names}, seen
    assert all((ftp_root / "upload" / name).read_bytes() == data for name, data in contents.items())


@pytest.mark.parametrize("checksum", ["sha256", "none"])  # blocks hashed as they go; sendfile
def test_a_delivered_files_bookkeeping_does_not_wait_for_the_whole_of_a_long_next_transfer(
    make_server, ftp_root, outbox, credentials, checksum
):
    """A recording delivered, and the next one (large, on a slow link) taken during its rename: the first's
    local copy goes and its result comes while the second's bytes still flow, not once they all went. Held
    until then, a power cut during the long transfer would send the first file again in full (its copy
    still local, its manifest line never written), and its result would wait minutes."""
    server = make_server()
    small = write(outbox / "a.wav", 2000)
    large = write(outbox / "b.wav", 2 * 1024 * 1024)  # some 2 s at the limit below
    part = ftp_root / "upload" / ".b.wav.part"
    at_first: list[int] = []  # the bytes of b.wav on the server when a.wav's result came
    results: list[UploadResult] = []

    def emit(result: UploadResult) -> None:
        if result.local_path.endswith("a.wav"):
            at_first.append(part.stat().st_size if part.exists() else 0)
        results.append(result)

    policy = UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5, bandwidth_limit_kbps=8000, checksum=checksum)
    sink = Sink(params_for(server, credentials), policy, emit)
    for name, data in (("a.wav", small), ("b.wav", large)):
        sink.put(UploadJob(str(outbox / name), f"/upload/{name}", len(data), (outbox / name).stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) == 2, timeout=60)
    finally:
        sink.stop(5)
    assert [(os.path.basename(r.local_path), r.outcome) for r in results] == [
        ("a.wav", Outcome.DELIVERED),
        ("b.wav", Outcome.DELIVERED),
    ]
    assert at_first and at_first[0] < len(large) // 2, (at_first, len(large))
    assert (ftp_root / "upload" / "b.wav").read_bytes() == large and not (outbox / "a.wav").exists()


def test_small_files_stors_do_not_wait_for_a_held_up_bookkeeping(make_server, ftp_root, outbox, credentials):
    """Small files go the lean way: while the first file's result is held up (a slow disk, a busy parent),
    the next files' STORs still reach the server, and every result comes in the end, each file removed."""
    faults = Faults()
    server = make_server(faults=faults)
    names = [f"f{i}.wav" for i in range(6)]
    contents = {name: write(outbox / name, 2000 + i) for i, name in enumerate(names)}
    held: list[int] = []  # the STORs the server had seen when the first small file's result was let go
    results: list[UploadResult] = []

    def emit(result: UploadResult) -> None:
        if len(results) == 1:  # the first small file's result: held until every STOR arrived (3 s at most)
            deadline = time.monotonic() + 3.0
            while len(faults.commands("STOR")) < len(names) and time.monotonic() < deadline:
                time.sleep(0.005)
            held.append(len(faults.commands("STOR")))
        results.append(result)

    sink = Sink(params_for(server, credentials), UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5), emit)
    first = names[0]  # the full path makes the folder with it; the others may go the lean way
    sink.put(
        UploadJob(str(outbox / first), f"/upload/{first}", len(contents[first]), (outbox / first).stat().st_mtime_ns)
    )
    sink.start()
    try:
        wait_until(lambda: len(results) == 1, timeout=30)
        for name in names[1:]:
            sink.put(
                UploadJob(
                    str(outbox / name), f"/upload/{name}", len(contents[name]), (outbox / name).stat().st_mtime_ns
                )
            )
        wait_until(lambda: len(results) == len(names), timeout=30)
    finally:
        sink.stop(5)
    assert held == [len(names)], held  # the loop sent them all while the bookkeeping was held up
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert all((ftp_root / "upload" / name).read_bytes() == data for name, data in contents.items())
    assert not any((outbox / name).exists() for name in names)


def test_a_burst_of_small_files_shares_its_journal_fsyncs(
    make_server, ftp_root, outbox, credentials, tmp_path, monkeypatch
):
    """The lean way's bookkeeping starts a batch at most every `BOOKS_SPACING` (unless a worker waits for its
    files): in a burst, the files verified meanwhile share one fsync of the manifest journal (each costs the
    sink CPU, about 0.15 ms on this VM), and every file still has its line before its local copy goes."""
    server = make_server()
    day = "2024-05-01"
    names = [f"st@{day}@f{i:03d}.wav" for i in range(60)]
    contents = {name: write(outbox / name, 2000 + i) for i, name in enumerate(names)}
    real_fsync = os.fsync
    books_fsyncs: list[float] = []

    def fsync(fd: int) -> None:
        if threading.current_thread().name == "ftp-lean-books":
            books_fsyncs.append(time.monotonic())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    results: list[UploadResult] = []
    sink = Sink(
        params_for(server, credentials), UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5), results.append
    )
    sink.manifests = Manifests(str(tmp_path / "journals"), interval=600.0, today=lambda: "2024-05-02")
    for name, data in contents.items():
        remote = f"/upload/st/{day}/audio/{name}"
        sink.put(UploadJob(str(outbox / name), remote, len(data), (outbox / name).stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) == len(names), timeout=60)
    finally:
        sink.stop(5)
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert not any((outbox / name).exists() for name in names)
    sums = (ftp_root / "upload" / "st" / day / "SHA256SUMS").read_text()  # from the journal, at the latest at stop
    listed = [line.split()[-1] for line in sums.splitlines() if not line.startswith("#")]
    assert sorted(listed) == [f"audio/{name}" for name in names]
    assert books_fsyncs, "the lean way's bookkeeping journaled nothing"
    # Batches begin `BOOKS_SPACING` apart at least, but for those a worker waiting for its run's files began
    # early (`hurried`); an fsync comes some time after its batch began (a loaded machine: several ms), so the
    # fsyncs are counted over their span, with one spacing of slack, rather than each gap checked.
    hurried = sink.lean._books.hurried
    span = books_fsyncs[-1] - books_fsyncs[0]
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(books_fsyncs))
    assert (len(books_fsyncs) - 1 - hurried) * BOOKS_SPACING <= span + BOOKS_SPACING, (gaps[:5], hurried, span)
