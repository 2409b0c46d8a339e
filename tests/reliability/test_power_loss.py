"""Power loss on the station: files still being written when the uploader starts wait until they are finished."""

from __future__ import annotations

import os
import time

from tests.e2e.conftest import uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.station import OLD

DAY = "2022-07-19"


def test_files_still_open_for_writing_at_start_are_not_uploaded_until_closed(
    watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    folder = outbox / "audio" / DAY
    folder.mkdir(parents=True)
    # The station came back after a power cut: one recorder resumed an old file, one began a new one.
    resumed = folder / f"rpi4-test@{DAY}@09-00-00.wav"
    begun = folder / f"rpi4-test@{DAY}@10-00-00.wav"
    writers = {path: path.open("wb") for path in (resumed, begun)}
    for writer in writers.values():
        writer.write(b"RIFF" + b"first half " * 5000)
        writer.flush()
    os.utime(resumed, (OLD, OLD))  # looks long finished by its age
    finished = folder / f"rpi4-test@{DAY}@08-00-00.wav"
    finished.write_bytes(b"RIFF finished before the cut")
    os.utime(finished, (OLD, OLD))

    run = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: not finished.exists(), timeout=20)  # the start-up scan went through
    written_at = time.monotonic()
    later = folder / f"rpi4-test@{DAY}@11-00-00.wav"
    later.write_bytes(b"RIFF written while the others are open")
    # Long past the quiet period, and a file finished meanwhile went through: the open ones did not.
    wait_until(lambda: not later.exists() and time.monotonic() - written_at > 0.8, timeout=20)
    assert server.watch.stored(resumed.name) == []
    assert server.watch.stored(begun.name) == []

    for writer in writers.values():
        writer.write(b"second half " * 5000)
        writer.close()
    contents = {path: path.read_bytes() for path in writers}
    wait_until(lambda: outbox_files(outbox) == [], timeout=20)
    assert run.stop() == 0
    for path, content in contents.items():
        assert server.files()[remote_of(f"{DAY}/audio/{path.name}")] == content
        assert len(server.watch.stored(path.name)) == 1  # one upload, of the finished file
