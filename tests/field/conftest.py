"""Fixtures for the field scenarios: a server a link away (replies held 20 ms), the uploader as a process.

The scenarios reuse the reliability tests' watched server and `UploaderProcess`; what this adds is
the link: every reply of the control connection comes 20 ms late, as in the benchmarks, so that a
file queued behind the wrong ones costs visible seconds.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.benchmarks.ftp_server import HeldReplies
from tests.e2e.conftest import STATION, uploader_env
from tests.reliability.conftest import WatchedServer, start_uploader, watched_server
from tests.reliability.server import WatchedHandler

__all__ = ["start_uploader", "watched_server"]

HERE = Path(__file__).parent
#: The benchmarks' round trip: each reply of the control connection is held back this long.
LINK_DELAY = 0.02
#: An mtime well in the past: backlog files are quiet at once (no debounce, no young-file recheck).
LONG_AGO = 1_600_000_000


class LinkHandler(HeldReplies, WatchedHandler):
    """The watched, fault-injecting handler, its replies held back by `reply_delay`."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave this folder's long variants (marked `slow`: the real tbf link) out unless a marker expression
    was given (`-m slow`; `make soak` does)."""
    if config.getoption("markexpr"):
        return
    slow = [item for item in items if HERE in Path(item.path).parents and item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@pytest.fixture
def link_server(watched_server: Callable[..., WatchedServer]) -> WatchedServer:
    """A watched loopback server whose every reply comes `LINK_DELAY` late (arrivals recorded in order)."""
    return watched_server(handler=LinkHandler, reply_delay=LINK_DELAY)


def recording(outbox: Path, sensor: str, day: str, time_of_day: str, size: int, *, old: bool = False) -> Path:
    """Write and close one recording as a station does: `<sensor>/<day>/<station>@<day>@<time>.<ext>`."""
    ext = {"audio": "wav", "video": "h264"}[sensor]
    path = outbox / sensor / day / f"{STATION}@{day}@{time_of_day}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))
    if old:
        os.utime(path, (LONG_AGO, LONG_AGO))
    return path


def field_env(server: WatchedServer, outbox: Path, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """The uploader's environment for a scenario: testing settings aimed at `server`, then `overrides`."""
    return uploader_env(server, outbox, tmp_path, **overrides)
