"""`beemon-uploader status`: the running uploader's status file as a table (or JSON), and how old it is;
with no uploader running, a summary of the outbox (files and bytes per sensor and day, the oldest
file, stray ``.part`` files).

Exit codes: 0 an uploader is running and its status is fresh, 1 none is running (or its status is stale).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from typing import Any

from pipeline.app.stats import format_bytes
from pipeline.app.status import STALE_INTERVALS, read_status
from pipeline.cli import exit_codes
from pipeline.outbox.lock import STATE_FOLDER, lock_path_for


def show_status(outbox: str, *, as_json: bool = False) -> int:
    document = read_status(outbox)
    running = document is not None and _running(outbox, int(document.get("pid", 0)))
    age = time.time() - float(document["written_at"]) if document else None
    stale = running and age is not None and age > STALE_INTERVALS * float(document.get("interval_seconds", 60))
    summary = None if running else outbox_summary(outbox)
    if as_json:
        print(
            json.dumps({"running": running, "stale": stale, "age_seconds": age, "status": document, "outbox": summary})
        )
    else:
        print("\n".join(_table(outbox, document, running, stale, age, summary)))
    return exit_codes.OK if running and not stale else exit_codes.FAILURES_REMAIN


def _running(outbox: str, pid: int) -> bool:
    """Whether the uploader that wrote the status still runs: it holds the lock (its PID is in it) and lives."""
    try:
        with open(lock_path_for(outbox), encoding="utf-8") as handle:
            holder = int(handle.read().strip() or 0)
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            command = handle.read()
    except (OSError, ValueError):
        return False
    return holder == pid and (b"beemon" in command or b"pipeline" in command)


def _ago(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _when(event: dict[str, Any] | None) -> str:
    if not event:
        return "none yet"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event["at"]))
    return f"{event['file']} -> {event['remote']} at {stamp} ({_ago(time.time() - event['at'])} ago): {event['reply']}"


def _table(
    outbox: str,
    doc: dict[str, Any] | None,
    running: bool,
    stale: bool,
    age: float | None,
    summary: dict[str, Any] | None,
) -> list[str]:
    lines = []
    if doc is not None and age is not None:
        state = "running" if running else "NOT RUNNING (last status below)"
        if stale:
            state = f"running but its status is STALE (more than {STALE_INTERVALS} intervals old): it may be hung"
        lines += [f"uploader PID {doc['pid']} ({doc.get('version', '?')}): {state}; status written {_ago(age)} ago"]
        space = doc.get("free_space")
        rows = [
            ("station", doc["station"]),
            ("outbox", doc["outbox"]),
            ("queued", f"{doc['queued']['live']} live, {doc['queued']['backfill']} backfill"),
            ("waiting a retry", doc["waiting_retry"]),
            ("in flight", doc["in_flight"]),
            ("delivered", f"{doc['delivered']} ({format_bytes(doc['bytes_delivered'])})"),
            ("failed attempts", doc["failed"]),
            ("last delivery", _when(doc["last_delivery"])),
            ("last error", _when(doc["last_error"])),
            ("open sessions", doc["sessions"]),
            ("parked files", len(doc["parked"])),
            (
                "oldest waiting",
                f"{doc['oldest_waiting']['file']} ({_ago(doc['oldest_waiting']['age_seconds'])})"
                if doc["oldest_waiting"]
                else "none",
            ),
            (
                "free space",
                f"{format_bytes(space['free_bytes'])} ({space['free_percent']} %)" + (" LOW" if space["low"] else "")
                if space
                else "unknown",
            ),
            ("sink restarts", doc["sink_restarts"]),
        ]
        width = max(len(name) for name, _ in rows)
        lines += [f"  {name:<{width}}  {value}" for name, value in rows]
        lines += [f"    parked: {item['file']}: {item['reply']}" for item in doc["parked"]]
    else:
        lines.append(f"no status file: no uploader has run on {os.path.abspath(outbox)} (or it could not write there)")
    if summary is not None:
        lines += _summary_lines(summary)
    return lines


def outbox_summary(outbox: str) -> dict[str, Any]:
    """Files and bytes per sensor and day, the oldest file, and stray `.part` files, from the folder itself."""
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    oldest: tuple[float, str] | None = None
    parts: list[str] = []
    root = os.path.abspath(outbox)
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != STATE_FOLDER)
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, root)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if name.endswith(".part"):
                parts.append(relative)
                continue
            if name.startswith("."):
                continue
            pieces = relative.split(os.sep)
            group = "/".join(pieces[:2]) if len(pieces) > 2 else (pieces[0] if len(pieces) > 1 else ".")
            groups[group][0] += 1
            groups[group][1] += st.st_size
            if oldest is None or st.st_mtime < oldest[0]:
                oldest = (st.st_mtime, relative)
    return {
        "outbox": root,
        "groups": {key: {"files": v[0], "bytes": v[1]} for key, v in sorted(groups.items())},
        "files": sum(v[0] for v in groups.values()),
        "bytes": sum(v[1] for v in groups.values()),
        "oldest": {"file": oldest[1], "age_seconds": round(time.time() - oldest[0])} if oldest else None,
        "stray_parts": sorted(parts),
    }


def _summary_lines(summary: dict[str, Any]) -> list[str]:
    lines = [
        f"outbox {summary['outbox']}: {summary['files']} files, {format_bytes(summary['bytes'])} waiting",
    ]
    lines += [
        f"  {group:<28} {row['files']:>6} files  {format_bytes(row['bytes']):>10}"
        for group, row in summary["groups"].items()
    ]
    if summary["oldest"]:
        lines.append(f"  oldest: {summary['oldest']['file']} ({_ago(summary['oldest']['age_seconds'])} old)")
    for part in summary["stray_parts"]:
        lines.append(f"  stray partial file: {part}")
    return lines
