"""A station back online drains its backlog; a recording made meanwhile must not wait behind it.

The backlog (two days of small audio files) goes out over 2 sessions to a server a 20 ms round trip
away. A recording is then made in a folder the backfill has not reached yet: the older day (the
backfill goes newest first) or a new day. It must reach the server within the debounce plus a
transfer or two, while most of the backlog is still waiting.
"""

from __future__ import annotations

import os
import time

import pytest

from tests.field.conftest import field_env, recording
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of

OLDER_DAY, NEWER_DAY, NEW_DAY = "2024-05-01", "2024-05-02", "2024-05-03"
#: 2 x 150: more than the 2 sessions can send while the recording waits out its debounce (at most 50 files a
#: second, two round trips per file each, however fast the machine: 100 a day drained too far on a fast one).
BACKLOG_PER_DAY = 150
AUDIO_BYTES = 40_000
#: The production default is 2 s; 3 s keeps a backlog written just before the start young at the
#: scan even when the machine is slow to start the uploader.
DEBOUNCE = 3.0
#: A couple of transfers on top of the debounce (one takes about 0.1 s here).
TRANSFERS = 1.5
#: Backlog files still waiting when the recording arrives, at least (25-50 go out per second).
STILL_WAITING = 60


def backlog(outbox, *, old: bool) -> list[str]:
    names = []
    for day in (OLDER_DAY, NEWER_DAY):
        for index in range(BACKLOG_PER_DAY):
            hh, mm = divmod(index, 60)
            names.append(recording(outbox, "audio", day, f"{hh:02d}-{mm:02d}-00", AUDIO_BYTES, old=old).name)
    return names


def moved_in(outbox, day: str, tmp_path):
    """A recording saved elsewhere, then moved into the outbox keeping its (old) timestamp."""
    elsewhere = recording(tmp_path / "recorder", "audio", day, "23-59-59", AUDIO_BYTES, old=True)
    target = outbox / "audio" / day / elsewhere.name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(elsewhere, target)
    return target


@pytest.mark.parametrize(
    "case",
    [
        # A backlog copied in (or left by a test) just before the start has fresh mtimes: the scan
        # finds it too young and takes it once quiet; it is still backlog, not live.
        pytest.param({"day": OLDER_DAY, "old_backlog": False, "drain": True}, id="fresh-backlog-existing-day"),
        pytest.param({"day": NEW_DAY, "old_backlog": False}, id="fresh-backlog-new-day"),
        # A rescan finds the moved-in recording (old mtime) before the watcher's debounce ends:
        # the backfill job comes first, and the live one must promote it.
        pytest.param({"day": OLDER_DAY, "old_backlog": True, "rescan": "0.2", "move": True}, id="rescan-races-watch"),
    ],
)
def test_a_recording_made_while_the_backlog_drains_overtakes_it(case, link_server, outbox, tmp_path, start_uploader):
    names = backlog(outbox, old=case["old_backlog"])
    env = field_env(
        link_server,
        outbox,
        tmp_path,
        BEEMON_FTP__CONNECTIONS="2",
        BEEMON_UPLOAD__DEBOUNCE_SECONDS=str(DEBOUNCE),
        BEEMON_WATCH__RESCAN_INTERVAL_SECONDS=case.get("rescan", "600"),
    )
    run = start_uploader(env)
    wait_until(lambda: len(link_server.arrivals.snapshot()) >= 5, timeout=30)

    if case.get("move"):
        live = moved_in(outbox, case["day"], tmp_path)
    else:
        live = recording(outbox, "audio", case["day"], "23-59-59", AUDIO_BYTES)
    content = live.read_bytes()
    written_at = time.monotonic()
    wait_until(lambda: live.name in link_server.arrivals.snapshot(), timeout=60)
    waited = time.monotonic() - written_at
    order = link_server.arrivals.snapshot()
    still_waiting = len(names) - order.index(live.name)

    assert waited <= DEBOUNCE + TRANSFERS, (waited, still_waiting)
    assert still_waiting >= STILL_WAITING, (waited, still_waiting)
    remote = link_server.root / remote_of(f"{case['day']}/audio/{live.name}")
    assert remote.read_bytes() == content
    if not case.get("drain"):
        return  # the drain below is the same for every case: once is enough for the suite's time

    # Then the backlog drains: every file on the server exactly once, nothing left behind.
    wait_until(lambda: outbox_files(outbox) == [], timeout=60)
    assert run.stop() == 0
    assert sorted(link_server.arrivals.snapshot()) == sorted([*names, live.name])
