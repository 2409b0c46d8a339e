"""A full link: every session busy with the backlog when a recording is made; it must not wait behind it.

The station is back online with a backlog of large files and a link it fills: an 8 Mbit/s limit
(`upload.bandwidth_limit_kbps`, the sink's shared token bucket) and 4 connections, against a
loopback server. A recording written while the backlog is in flight must reach the server within
the debounce, its own size at the link rate and a second, not after the backlog transfers in
flight end (some 8 s here); and the backlog must still all arrive, each file once.
"""

from __future__ import annotations

import time

from tests.field.conftest import field_env, recording
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of

DAY, TODAY = "2024-05-01", "2024-05-02"
LINK_KBPS = 8_000
LINK_BYTES_PER_SECOND = LINK_KBPS * 125
CONNECTIONS = 4
BACKLOG_FILES = 4
BACKLOG_BYTES = 2_000_000
LIVE_BYTES = 200_000
DEBOUNCE = 1.0
#: On top of the debounce and the live file's own time on the link: logins, rename, the polling.
SLACK = 1.0


def parts_on_server(server) -> int:
    """Temporary names the server holds bytes in now: transfers in flight."""
    return sum(1 for p in server.root.rglob(".*.part") if p.stat().st_size > 0)


def test_a_recording_overtakes_a_backlog_that_fills_the_link(watched_server, outbox, tmp_path, start_uploader):
    server = watched_server()
    backlog = [
        recording(outbox, "video", DAY, f"10-{minute:02d}-00", BACKLOG_BYTES, old=True).name
        for minute in range(BACKLOG_FILES)
    ]
    env = field_env(
        server,
        outbox,
        tmp_path,
        BEEMON_FTP__CONNECTIONS=str(CONNECTIONS),
        BEEMON_UPLOAD__BANDWIDTH_LIMIT_KBPS=str(LINK_KBPS),
        BEEMON_UPLOAD__DEBOUNCE_SECONDS=str(DEBOUNCE),
        BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="600",
    )
    run = start_uploader(env)
    # The backlog fills the link: several transfers under way, none near its end (each needs 2+ s alone).
    wait_until(lambda: parts_on_server(server) >= CONNECTIONS - 1, timeout=30, interval=0.01)
    time.sleep(0.3)

    live = recording(outbox, "audio", TODAY, "12-00-00", LIVE_BYTES)
    content = live.read_bytes()
    written_at = time.monotonic()
    wait_until(lambda: live.name in server.arrivals.snapshot(), timeout=30, interval=0.01)
    waited = time.monotonic() - written_at

    bound = DEBOUNCE + LIVE_BYTES / LINK_BYTES_PER_SECOND + SLACK
    order = server.arrivals.snapshot()
    print(f"live file waited {waited:.2f} s (bound {bound:.2f} s)")
    assert waited <= bound, (round(waited, 2), bound, order)
    assert (server.root / remote_of(f"{TODAY}/audio/{live.name}")).read_bytes() == content

    # The backlog still all arrives, each file once, and nothing stays behind.
    wait_until(lambda: outbox_files(outbox) == [], timeout=60)
    assert run.stop() == 0
    assert sorted(server.arrivals.snapshot()) == sorted([*backlog, live.name])
