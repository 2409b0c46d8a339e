"""`upload.stop_deadline_seconds` sets how long a stop lets transfers in flight finish; a transfer cut
at the deadline resumes from its `.part` at the next start."""

from __future__ import annotations

import os
import queue
import threading
import time

import pytest

from pipeline import Uploader
from pipeline.sink.process import PARTS_JOURNAL_NAME
from settings import build_settings
from tests.conformance.conftest import REMOTE_ROOT, STATION, Station
from tests.ftp_faults import Faults
from tests.helpers import wait_until

SIZE = 3_000_000


def test_stop_deadline_default_and_setting(clean_environment, monkeypatch: pytest.MonkeyPatch):
    assert build_settings("development").upload.stop_deadline_seconds == 10
    monkeypatch.setenv("BEEMON_UPLOAD__STOP_DEADLINE_SECONDS", "2.5")
    assert Uploader(queue.Queue(), build_settings("development")).options.policy.stop_deadline_seconds == 2.5


def test_a_transfer_cut_at_the_stop_deadline_resumes_from_its_part(
    station: Station, faults: Faults, monkeypatch: pytest.MonkeyPatch
):
    content = bytes(range(256)) * (SIZE // 256)
    path = station.recording("audio", "18-00-00", "wav", content)
    past = time.time() - 60
    os.utime(path, (past, past))
    remote = f"{REMOTE_ROOT}/{STATION}/2022-07-19/audio/{path.name}"
    part = station.on_server(remote).parent / f".{path.name}.part"
    monkeypatch.setenv("BEEMON_UPLOAD__STOP_DEADLINE_SECONDS", "0.5")
    monkeypatch.setenv("BEEMON_UPLOAD__BANDWIDTH_LIMIT_KBPS", "4000")  # 500 kB/s: six seconds for the file

    commands: queue.Queue[str] = queue.Queue()
    uploader = Uploader(commands, station.parser())
    thread = threading.Thread(target=uploader.run, daemon=True)
    thread.start()
    wait_until(lambda: part.is_file() and part.stat().st_size > 200_000, timeout=20)
    commands.put("stop")
    stopping = time.monotonic()
    thread.join(30)
    took = time.monotonic() - stopping
    assert not thread.is_alive()
    assert took < 4.0, f"stop took {took:.1f} s with a 0.5 s deadline"  # was 10 s, fixed
    cut = part.stat().st_size
    assert 0 < cut < SIZE and part.read_bytes() == content[:cut]
    assert path.read_bytes() == content  # the local file stays
    assert (station.outbox / PARTS_JOURNAL_NAME).is_file()

    monkeypatch.delenv("BEEMON_UPLOAD__BANDWIDTH_LIMIT_KBPS")
    commands = queue.Queue()
    again = Uploader(commands, station.parser())
    thread = threading.Thread(target=again.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: not path.exists(), timeout=30)
    finally:
        commands.put("stop")
        thread.join(30)
    assert station.on_server(remote).read_bytes() == content
    assert any(int(offset) >= cut for offset in faults.commands("REST")), faults.commands("REST")
    assert not (station.outbox / PARTS_JOURNAL_NAME).exists()
