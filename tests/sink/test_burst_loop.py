"""The lean loop carries runs of small files (issue 17), in-process against a real server.

From outside the process the lean path cannot be told from the full one (the same commands in the
same flights: tests/field/test_small_file_runs.py checks its promises there). Here the real `Sink`
delivers a run of small files and the test sees which way each went (the lean loop's thread, and its
verified files' bookkeeping through `DeliveryStep.lean_delivered_many`), and that the lean way keeps the
full way's outcomes: every file whole, deleted only once verified, one result each.
"""

from __future__ import annotations

import os
import threading
import time

from operators.model import UploadJob
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write


def test_a_run_of_small_files_goes_the_lean_way_after_each_sessions_first_file(
    make_server, ftp_root, outbox, credentials
):
    faults = Faults()
    server = make_server(faults=faults)
    names = [f"f{i:03d}.wav" for i in range(60)]
    contents = {name: write(outbox / name, 0 if i % 20 == 7 else 1024 + 37 * i) for i, name in enumerate(names)}
    results: list[UploadResult] = []
    sink = Sink(
        params_for(server, credentials), UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5), results.append
    )
    lean: list[tuple[str, bool, bool]] = []  # (name, on the server whole, still local) when its bookkeeping began
    original = sink.step.lean_delivered_many

    def lean_delivered_many(files, *, recorded):  # a spy: the real bookkeeping runs right after
        for file, _ in files:
            name = os.path.basename(file.local_path)
            on_server = (ftp_root / "upload" / name).read_bytes() == contents[name]
            lean.append((name, on_server, (outbox / name).exists()))
        original(files, recorded=recorded)

    sink.step.lean_delivered_many = lean_delivered_many  # type: ignore[method-assign]
    threads: set[str] = set()
    watching = threading.Event()

    def names_of_threads() -> None:
        while not watching.is_set():
            threads.update(t.name for t in threading.enumerate())
            time.sleep(0.002)

    watcher = threading.Thread(target=names_of_threads, daemon=True)
    watcher.start()
    for name, data in contents.items():
        path = outbox / name
        sink.put(UploadJob(str(path), f"/upload/{name}", len(data), path.stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) == len(names), timeout=30)
    finally:
        watching.set()
        sink.stop(5)
        watcher.join(5)
    assert "ftp-lean" in threads and "ftp-lean-books" in threads, sorted(threads)
    assert sorted(os.path.basename(r.local_path) for r in results) == names  # one result each
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert len(lean) >= len(names) - 2, f"only {len(lean)} of {len(names)} went the lean way"
    assert all(on_server and still_local for _, on_server, still_local in lean)  # verified first, deleted after
    assert all((ftp_root / "upload" / name).read_bytes() == data for name, data in contents.items())
    assert not [p for p in outbox.iterdir() if p.suffix == ".wav"]
    assert not [p.name for p in (ftp_root / "upload").iterdir() if p.name.endswith(".part")]


def test_a_bug_in_the_lean_loop_hands_every_session_back_and_its_verified_files_still_get_their_bookkeeping(
    make_server, ftp_root, outbox, credentials
):
    """The loop's last resort (`BurstLoop._run`: a bug gives every session back to its worker, which reports the
    file) must not strand the files verified in that very turn: each has its bookkeeping (deleted, reported),
    and no worker waits for them for ever. The bug is injected right after a file's copy was verified (its
    report handed to the loop), before the turn ends."""
    server = make_server()
    names = [f"f{i:03d}.wav" for i in range(40)]
    contents = {name: write(outbox / name, 1024 + 13 * i) for i, name in enumerate(names)}
    results: list[UploadResult] = []
    policy = UploadPolicy(connections=2, retry_base=0.05, retry_max=0.2)
    sink = Sink(params_for(server, credentials), policy, results.append)
    injected: list[str] = []
    verified_lean: set[str] = set()  # (their results may come later: the bookkeeping batches them)

    def with_a_bug(session):  # the session's lean runs, with a bug once the last files are verified (no lend follows)
        lean_flow = session.lean_flow

        def flow(first, following, verified):
            def buggy(file, report):
                verified(file, report)
                verified_lean.add(file.local_path)
                if len(verified_lean | {r.local_path for r in results}) >= len(names) - 1 and not injected:
                    injected.append(os.path.basename(file.local_path))
                    raise RuntimeError("a bug injected by the test")

            return lean_flow(first, following, buggy)

        session.lean_flow = flow

    for session in sink.sessions:
        with_a_bug(session)
    for name, data in contents.items():
        path = outbox / name
        sink.put(UploadJob(str(path), f"/upload/{name}", len(data), path.stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(
            lambda: {os.path.basename(r.local_path) for r in results if r.outcome == Outcome.DELIVERED} == set(names),
            timeout=20,
        )
    finally:
        sink.stop(5)
    assert injected, "the bug was never injected: the test proves nothing"
    assert all((ftp_root / "upload" / name).read_bytes() == data for name, data in contents.items())
    assert not [p for p in outbox.iterdir() if p.suffix == ".wav"]
