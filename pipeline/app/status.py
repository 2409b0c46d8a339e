"""The status file: what a running uploader is doing, for `beemon-uploader status` to print.

Written at each statistics tick as ``<outbox>/.beemon/status.json`` (the state folder the watcher
ignores, beside the lock), atomically: a temporary file, fsync'ed, then renamed over the old one,
so a reader never sees half a file and a power cut leaves the old or the new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

from pipeline.app.activity import Activity
from pipeline.app.disk_guard import DiskGuard
from pipeline.app.stats import UploadStats
from pipeline.app.version import VERSION
from pipeline.outbox.lock import STATE_FOLDER

STATUS_NAME = "status.json"
#: A status file older than this many statistics intervals means the writer stopped writing.
STALE_INTERVALS = 3


def status_path(outbox: str) -> str:
    return os.path.join(os.path.abspath(outbox), STATE_FOLDER, STATUS_NAME)


def status_document(
    *,
    outbox: str,
    station: str,
    interval: float,
    stats: UploadStats,
    activity: Activity,
    disk: DiskGuard,
    sink: Any | None,
) -> dict[str, Any]:
    """The status as plain JSON values. `sink` is the sink's `SinkStats` (None between pipelines)."""
    snap = stats.snapshot()
    oldest = stats.oldest_waiting()
    space = disk.last
    return {
        "pid": os.getpid(),
        "version": VERSION,
        "written_at": time.time(),
        "started_at": activity.started_at,
        "interval_seconds": interval,
        "station": station,
        "outbox": os.path.abspath(outbox),
        "running": sink is not None,
        "queued": {"live": snap.queued_primary, "backfill": snap.queued_secondary},
        "waiting_retry": sink.waiting if sink is not None else 0,
        "in_flight": snap.in_flight,
        "delivered": snap.delivered,
        "failed": snap.failed,
        "bytes_delivered": snap.bytes_delivered,
        "rate_bytes_per_second": round(snap.rate_bytes_per_second, 1),
        "sessions": sink.sessions if sink is not None else 0,
        "parked": [{"file": path, "reply": reply} for path, reply in sorted(activity.parked().items())],
        "last_delivery": activity.last_delivery.as_dict() if activity.last_delivery else None,
        "last_error": activity.last_error.as_dict() if activity.last_error else None,
        "oldest_waiting": {"file": oldest[0], "age_seconds": round(oldest[1])} if oldest else None,
        "free_space": None
        if space is None
        else {
            "free_bytes": space.free_bytes,
            "total_bytes": space.total_bytes,
            "free_percent": round(space.free_percent, 1),
            "min_free_percent": disk.min_free_percent,
            "low": disk.low,
        },
        "failures_by_reason": activity.failures(),
        "sink_restarts": activity.sink_restarts,
        "reloads": activity.reloads,
    }


def write_status(outbox: str, document: dict[str, Any]) -> str:
    """Replace the status file atomically; returns its path. Raises OSError (a read-only outbox)."""
    path = status_path(outbox)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def read_status(outbox: str) -> dict[str, Any] | None:
    """The last status written for `outbox`, or None when there is none (or it cannot be read)."""
    try:
        with open(status_path(outbox), encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None
