"""Log formats and the statistics figures: exact lines and fields."""

from __future__ import annotations

import io
import json
import logging
import time

import pytest

from operators.model import Priority
from pipeline.app.logs import configure_logging
from pipeline.app.stats import UploadStats, format_bytes
from pipeline.sink.model import Outcome
from tests.helpers import job


@pytest.fixture(autouse=True)
def restore_root_logging():
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_log_lines_carry_the_upload_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    logging.getLogger("beemon.sink").info(
        "delivered %s", "a.wav", extra={"file": "a.wav", "size": 12, "seconds": 0.5, "reply": "226 ok"}
    )
    entry = json.loads(stream.getvalue())
    assert {k: entry[k] for k in ("level", "logger", "message", "file", "size", "seconds", "reply")} == {
        "level": "INFO",
        "logger": "beemon.sink",
        "message": "delivered a.wav",
        "file": "a.wav",
        "size": 12,
        "seconds": 0.5,
        "reply": "226 ok",
    }


def test_text_log_line_is_readable() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    logging.getLogger("beemon.cli").warning("plain FTP to %s", "ftp.example.org")
    assert stream.getvalue().endswith(" WARNING beemon.cli: plain FTP to ftp.example.org\n")


def test_text_log_lines_carry_the_second_each_was_made_in() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    logger = logging.getLogger("beemon.sink")
    moments = [1_764_633_600.2, 1_764_633_600.9, 1_764_633_601.0, 1_764_633_600.5, 1_764_720_000.0]
    for moment in moments:
        logger.handle(
            logging.makeLogRecord(
                {
                    "name": "beemon.sink",
                    "msg": "delivered",
                    "levelno": logging.INFO,
                    "levelname": "INFO",
                    "created": moment,
                }
            )
        )
    stamps = [line[:19] for line in stream.getvalue().splitlines()]
    assert stamps == [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) for moment in moments]


def test_stats_snapshot_counts_queues_flight_and_deliveries() -> None:
    stats = UploadStats()
    now_ns = time.time_ns()
    stats.submitted(job("/a", Priority.LIVE, mtime_ns=now_ns))
    stats.submitted(job("/b", Priority.BACKFILL, mtime_ns=now_ns - 3_600 * 10**9))
    stats.submitted(job("/c", Priority.BACKFILL, mtime_ns=now_ns))
    stats.finished("/a", Outcome.DELIVERED, 1_500)
    stats.finished("/c", Outcome.RETRY, 0)
    snap = stats.snapshot()
    assert (snap.queued_primary, snap.queued_secondary, snap.in_flight) == (0, 2, 0)
    assert (snap.delivered, snap.failed, snap.bytes_delivered) == (1, 1, 1_500)
    assert 3_599 <= snap.oldest_waiting_seconds <= 3_700
    assert snap.rate_bytes_per_second == 1_500.0
    assert snap.line().startswith("queued 0 live + 2 backfill, in flight 0, delivered 1, failed 1, 1.5 KB, 1.5 KB/s")
    stats.finished("/b", Outcome.GONE, 0)
    stats.finished("/c", Outcome.DELIVERED, 100)
    assert (stats.snapshot().queued_primary, stats.snapshot().queued_secondary) == (0, 0)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 999, 1_000, 2_500_000, 3e9)] == ["0 B", "999 B", "1.0 KB", "2.5 MB", "3.0 GB"]
