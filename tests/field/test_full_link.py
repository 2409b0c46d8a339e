"""A full link: every session busy with the backlog when a recording is made; it must not wait behind it.

The station is back online with a backlog of large files and a link it fills: an 8 Mbit/s limit
(`upload.bandwidth_limit_kbps`, the sink's shared token bucket) and 4 connections, against a
loopback server. A recording written while the backlog is in flight must reach the server within
the debounce, its own size at the link rate and a second, not after the backlog transfers in
flight end (some 8 s here); and the backlog must still all arrive, each file once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.transport.unsent import BACKLOG_UNSENT_BYTES
from tests.benchmarks import link_trace
from tests.benchmarks.link import PORT, tbf_link, vsftpd_in
from tests.e2e.conftest import STATION
from tests.field.conftest import field_env, recording
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.server import TrippingDTPHandler, WatchedHandler

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


# --- what the backlog leaves in the kernel (the socket's view, from `ss`)

#: The server reads each data connection this fast, into a small receive buffer: the link is the
#: bottleneck, so what a client hands over waits in its own socket (the kernel's unsent bytes).
SLOW_READ_BYTES_PER_SECOND = 1_000_000
SLOW_RECEIVE_BUFFER = 64 * 1024
#: The kernel may queue one segment beyond the bound (`ss` reports it), 64 KiB on loopback.
SEGMENT_SLACK = 64 * 1024


def slow_link_handler(connections: dict[tuple[int, int], str]) -> type:
    """A watched handler whose data connections read slowly; `connections` is filled with
    (client port, server port) -> the path each one stores into."""

    class SlowDTPHandler(TrippingDTPHandler):
        def __init__(self, sock: socket.socket, cmd_channel: object) -> None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RECEIVE_BUFFER)
            super().__init__(sock, cmd_channel)
            self.ports = (sock.getpeername()[1], sock.getsockname()[1])

        def enable_receiving(self, type: str, cmd: str) -> None:
            connections[self.ports] = self.file_obj.name
            super().enable_receiving(type, cmd)

        def handle_read(self) -> None:
            """Read what is there, then nothing for as long as those bytes take at the link's rate."""
            before = self.tot_bytes_received
            super().handle_read()
            taken = self.tot_bytes_received - before
            if taken and not self._closed and self.file_obj is not None:
                self.del_channel()
                self.ioloop.call_later(taken / SLOW_READ_BYTES_PER_SECOND, self._go_on, _errback=self.handle_error)

        def _go_on(self) -> None:
            if not self._closed:
                self.add_channel(events=self.ioloop.READ)

        handle_read_event = handle_read

    class SlowLinkHandler(WatchedHandler):
        dtp_handler = SlowDTPHandler

    return SlowLinkHandler


def unsent_by_file(connections: dict[tuple[int, int], str]) -> dict[str, int]:
    """What each of the client's data sockets holds unsent now (the kernel's count), by the file it carries."""
    found = {}
    for port, info in link_trace.sockets("127.0.0.1").items():
        path = connections.get((port, int(info["peer_port"])))
        if path is not None:
            found[os.path.basename(path)] = int(info["notsent"])
    return found


def test_a_backlog_transfer_keeps_little_unsent_in_the_kernel_and_a_recording_does_not(
    watched_server, outbox, tmp_path, start_uploader
):
    """On a slow link the backlog's sockets hold at most `BACKLOG_UNSENT_BYTES` not yet sent (what a fresh
    recording would wait behind); a recording's own socket is not bounded (it should not wait for its sender)."""
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed: `make servers` installs it")
    connections: dict[tuple[int, int], str] = {}
    server = watched_server(handler=slow_link_handler(connections))
    backlog = [recording(outbox, "video", DAY, f"11-{minute:02d}-00", 3_000_000, old=True).name for minute in range(3)]
    env = field_env(
        server,
        outbox,
        tmp_path,
        BEEMON_FTP__CONNECTIONS=str(CONNECTIONS),
        BEEMON_UPLOAD__DEBOUNCE_SECONDS="0.3",
        BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="600",
    )
    run = start_uploader(env)
    wait_until(lambda: len(connections) >= 3, timeout=30, interval=0.01)
    most: dict[str, int] = {}
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        for name, unsent in unsent_by_file(connections).items():
            most[name] = max(most.get(name, 0), unsent)
        time.sleep(0.01)

    live = recording(outbox, "audio", TODAY, "12-30-00", 2_000_000)
    while live.name not in server.arrivals.snapshot():
        for name, unsent in unsent_by_file(connections).items():
            most[name] = max(most.get(name, 0), unsent)
        time.sleep(0.01)

    bound = BACKLOG_UNSENT_BYTES + SEGMENT_SLACK
    held = {name: most.get(f".{name}.part", 0) for name in backlog}
    print(f"most unsent: backlog {held}, recording {most.get(f'.{live.name}.part')} (bound {bound})")
    assert max(held.values()) <= bound, held
    assert most.get(f".{live.name}.part", 0) > 2 * bound, most  # the recording's socket takes all it can
    wait_until(lambda: outbox_files(outbox) == [], timeout=60)
    assert run.stop() == 0
    assert sorted(server.arrivals.snapshot()) == sorted([*backlog, live.name])


# --- a real link: tbf in a network namespace, vsftpd behind it (root only; `make soak`)

REAL_LINK_BACKLOG_BYTES = 8_000_000
REAL_LINK_LIVE_BYTES = 500_000
REAL_LINK_DEBOUNCE = 0.5
#: What the fresh file may take: the debounce, its own time at 20 Mbit/s (0.2 s), logins and
#: round trips, and at most some 0.3 s behind what the backlog had handed to the kernel. Before
#: the backlog's sockets were bounded it took 1.29-1.94 s in the bench; the issue's bound is 1.70 s.
REAL_LINK_BOUND = 1.3


@pytest.mark.slow
def test_on_a_real_link_a_recording_waits_behind_little_of_the_backlog(outbox, tmp_path, start_uploader):
    """`tbf rate 20mbit` between the station and vsftpd, 3 backlog videos in flight for 2 s (their
    send buffers grown), then a 500 kB recording: it is on the server within `REAL_LINK_BOUND`."""
    if os.geteuid() != 0 or shutil.which("tc") is None:
        pytest.skip("needs root and iproute2 (network namespaces, tc): run `make soak` as root")
    with tbf_link() as (namespace, address, _), vsftpd_in(namespace, address, tmp_path / "vsftpd") as root:
        backlog = [
            recording(outbox, "video", DAY, f"13-{minute:02d}-00", REAL_LINK_BACKLOG_BYTES, old=True)
            for minute in range(4)
        ]
        remote_root = f"{root}/data"
        env = field_env(
            SimpleNamespace(server=SimpleNamespace(port=PORT), username="anonymous", password="unused"),
            outbox,
            tmp_path,
            BEEMON_FTP__HOST=address,
            BEEMON_FTP__REMOTE_ROOT=remote_root,
            BEEMON_FTP__CONNECTIONS=str(CONNECTIONS),
            BEEMON_UPLOAD__DEBOUNCE_SECONDS=str(REAL_LINK_DEBOUNCE),
            BEEMON_UPLOAD__STOP_DEADLINE_SECONDS="1",
            BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="600",
        )
        videos = Path(remote_root) / STATION / DAY / "video"
        run = start_uploader(env)
        wait_until(lambda: len([p for p in videos.glob(".*.part") if p.stat().st_size]) >= 3, timeout=30)
        under_way = _bytes_in(videos)
        # some 2 s of the link more (20 Mbit/s: 5 MB): the backlog's transfers have filled the kernel's buffers
        wait_until(lambda: _bytes_in(videos) - under_way >= 5_000_000, timeout=30)

        live = recording(outbox, "audio", TODAY, "14-00-00", REAL_LINK_LIVE_BYTES)
        content, written_at = live.read_bytes(), time.monotonic()
        arrived = Path(remote_root) / STATION / TODAY / "audio" / live.name
        wait_until(arrived.exists, timeout=30, interval=0.005)
        waited = time.monotonic() - written_at
        run.stop()
    print(f"live file waited {waited:.2f} s on the tbf link (bound {REAL_LINK_BOUND} s)")
    assert waited <= REAL_LINK_BOUND, waited
    assert arrived.read_bytes() == content
    for path in backlog:  # each video sent whole, or still in the outbox for later
        assert path.exists() or (videos / path.name).stat().st_size == REAL_LINK_BACKLOG_BYTES


def _bytes_in(folder: Path) -> int:
    """Bytes of every file in `folder` on the server (`.part` or renamed: a transfer may end meanwhile)."""
    total = 0
    for entry in os.scandir(folder):
        with contextlib.suppress(FileNotFoundError):  # renamed meanwhile: counted under its new name next time
            total += entry.stat().st_size
    return total
