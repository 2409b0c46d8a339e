"""`run --once --dry-run`: where every ready file would go, and what would be skipped and why.

The same scan, readiness rules and remote mapping as `run --once`, without connecting, locking,
moving or deleting anything: the outbox and the server stay exactly as they are. Exit 0.
"""

from __future__ import annotations

import os
import time

from operators.readiness import is_ignored_name, relative_parts
from operators.remote_path import bare_csv_of, is_daily_csv, is_final, remote_name
from pipeline.app.options import UploaderOptions
from pipeline.cli import exit_codes
from pipeline.outbox.file_state import finished_file_stat
from pipeline.outbox.lock import STATE_FOLDER
from pipeline.stream.scan_jobs import scan_jobs, with_state_folder


def dry_run(options: UploaderOptions) -> int:
    """Print ``local -> remote`` per file that would go, then ``skip local: why`` per file that would not."""
    root = os.path.abspath(options.outbox)
    jobs = list(
        scan_jobs(
            root,
            remote_root=options.target.remote_root,
            station=options.station,
            ignore_patterns=options.ignore_patterns,
            backfill_order=options.backfill_order,
            min_age_seconds=options.debounce_seconds,
            orphan_csv_after_seconds=options.orphan_csv_after_seconds,
        )
    )
    sent = {job.local_path for job in jobs}
    print(f"dry run: nothing is sent, moved or deleted; server {options.target.host}:{options.target.port}")
    for job in jobs:
        print(f"{job.local_path} -> {job.remote_path}")
    skipped = 0
    for path in _files(root):
        if path not in sent:
            print(f"skip {path}: {explain(path, root, options, sent)}")
            skipped += 1
    print(f"{len(jobs)} file(s) would be uploaded, {skipped} skipped")
    return exit_codes.OK


def _files(root: str) -> list[str]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != STATE_FOLDER)
        found += [os.path.join(folder, name) for name in sorted(files)]
    return found


def explain(path: str, root: str, options: UploaderOptions, sent: set[str]) -> str:
    """Why the scan left `path` out, in the words of the rule that did."""
    patterns = with_state_folder(options.ignore_patterns)
    parts = relative_parts(path, root)
    for part in parts:
        if is_ignored_name(part, patterns):
            return f"{part!r} matches upload.ignore_patterns {list(options.ignore_patterns)}"
    if os.path.islink(path):
        return "a symbolic link (links are never followed)"
    if not os.path.isfile(path):
        return "not a regular file"
    name = parts[-1]
    if is_final(name) and bare_csv_of(path) in sent:
        return f"the day's end marker: {os.path.basename(bare_csv_of(path))} goes in its place"
    if is_daily_csv(name):
        if os.path.exists(path + ".final") or os.path.exists(path + ".FINAL"):
            return "its .final goes instead (the complete day)"
        return (
            "a day's CSV still being written: it goes when its .final appears, or once a past day's file has been"
            f" quiet for upload.orphan_csv_after_hours ({options.orphan_csv_after_seconds / 3600:g} h)"
        )
    if remote_name(name) is None:
        return "its name maps to no remote name"
    age = time.time() - os.stat(path).st_mtime
    if age < options.debounce_seconds:
        return (
            f"written {age:.1f} s ago: it goes once quiet for upload.debounce_seconds ({options.debounce_seconds:g} s)"
        )
    if finished_file_stat(path) is None:
        return "open for writing by another process: it goes once closed"
    return (
        "its path does not fit <sensor>/<YYYY-MM-DD>/<station>@<YYYY-MM-DD>[@HH-MM-SS].<ext>, so it has no remote path"
    )
