"""A sink up for months passes midnight: the day it was uploading is finished while it runs.

A station's `run` does not restart at midnight. The day's manifest went up while its files came
(each time its queue drained); after midnight that day is past, and once nothing of it is left to
send its manifest is put and read back one last time and its journal goes, as a restart would do.
Before, it waited for the next start: on a station up for a season, a journal (and an unchecked
manifest) per day piled up. The date is the only thing faked here (the `today` the sink is given):
the server, the session, the journal's files and the worker's idle loop are real.
"""

from __future__ import annotations

import logging
from pathlib import Path

from operators.model import UploadJob
from pipeline.sink.manifest import Manifests
from pipeline.sink.model import UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from tests.helpers import params_for, wait_until, write

DAY = "2024-05-01"
MANIFEST = f"upload/st/{DAY}/SHA256SUMS"


def journals(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*") if p.is_file()) if folder.exists() else []


def test_a_day_that_becomes_past_while_the_sink_runs_is_finished_and_its_journal_goes(
    make_server, ftp_root, outbox, credentials, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="beemon.sink")
    server = make_server()
    today = [DAY]
    folder = tmp_path / "journals"
    results: list[UploadResult] = []
    policy = UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5, idle_noop_seconds=0.2, idle_close_seconds=60)
    sink = Sink(params_for(server, credentials), policy, results.append)
    sink.manifests = Manifests(str(folder), interval=600.0, today=lambda: today[0])
    name = f"st@{DAY}@23-59-00.wav"
    data = write(outbox / name, 4096)
    path = outbox / name
    sink.put(UploadJob(str(path), f"/upload/st/{DAY}/audio/{name}", len(data), path.stat().st_mtime_ns))
    sink.start()
    try:
        manifest = ftp_root / MANIFEST
        wait_until(lambda: manifest.exists() and name in manifest.read_text(), timeout=15)
        assert not path.exists() and [r.outcome.value for r in results] == ["delivered"]
        assert journals(folder), "the day's journal is kept while the day lasts"
        put = manifest.read_bytes()
        assert not [r for r in caplog.records if "(day complete)" in r.getMessage()]

        today[0] = "2024-05-02"  # midnight, with nothing more of that day to send
        wait_until(lambda: not journals(folder), timeout=10)
    finally:
        sink.stop(5)
    assert manifest.read_bytes() == put  # read back whole: the same lines
    (complete,) = [r.getMessage() for r in caplog.records if "(day complete)" in r.getMessage()]
    assert complete.endswith(f"/upload/st/{DAY}/SHA256SUMS: 1 file(s) (day complete)"), complete
