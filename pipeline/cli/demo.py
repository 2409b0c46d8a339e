"""`demo`: an embedded server, a simulated station and the real uploader between them, then a summary."""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.app.options import EMBEDDED, UploaderOptions
from pipeline.app.running import RunningPipeline
from pipeline.app.stats import UploadStats, format_bytes
from pipeline.cli import exit_codes
from pipeline.dev.station_simulator import StationSimulator
from pipeline.outbox.lock import OutboxLock

log = logging.getLogger("beemon.demo")
#: The simulated station's name: the demo's server folder holds only its files.
DEMO_STATION = "rpi4-demo"
#: How long the demo waits, after the station stops, for the last files to arrive.
DRAIN_SECONDS = 60.0


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_demo(options: UploaderOptions, *, var: Path, duration: float) -> int:
    """Exit 0 when every file the station wrote arrived byte-identical, 1 otherwise."""
    if options.kind != "ftp":
        from pipeline.cli.demo_remote import run_remote_demo

        return run_remote_demo(options, var=var, duration=duration)
    outbox = var / "outbox"
    ftp_root = var / "ftp-root"
    options = replace(
        options,
        outbox=str(outbox),
        station=DEMO_STATION,
        embedded_root=str(ftp_root),
        debounce_seconds=min(options.debounce_seconds, 1.0),
        ftp=replace(options.ftp, host=EMBEDDED, port=options.ftp.port, password=secrets.token_urlsafe(16), tls="none"),
    )
    stats = UploadStats()
    _forget_previous_demo(ftp_root / options.ftp.remote_root.lstrip("/") / DEMO_STATION)
    station = StationSimulator(outbox, station=DEMO_STATION)
    log.info("demo: station writing into %s for %.0f s; server storing into %s", outbox, duration, ftp_root)
    with OutboxLock(str(outbox)), RunningPipeline(options, stats) as running:
        station.start()
        time.sleep(duration)
        written = station.stop()
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any(p.exists() for p in written):
            time.sleep(0.2)
        del running
    missing = []
    for path, digest in written.items():
        remote = _remote_file(ftp_root, options, path, outbox)
        if not remote.is_file() or _digest(remote) != digest:
            missing.append(path)
    print(f"\nremote tree under {ftp_root}:")
    for remote in sorted(ftp_root.rglob("*")):
        if remote.is_file():
            print(f"  {remote.relative_to(ftp_root)}  {remote.stat().st_size} B")
    return report_summary(written, missing, stats)


def report_summary(written: dict[Any, str], missing: list[Any], stats: UploadStats) -> int:
    """The demo's last lines, for every transport: what the station wrote, what arrived intact, the exit code."""
    snapshot = stats.snapshot()
    print(
        f"\nsummary: station wrote {len(written)} files; {len(written) - len(missing)} arrived byte-identical; "
        f"{format_bytes(snapshot.bytes_delivered)} delivered; {len(missing)} missing"
    )
    for path in missing:
        print(f"  missing: {path}")
    return exit_codes.FAILURES_REMAIN if missing else exit_codes.OK


def _forget_previous_demo(station_folder: Path) -> None:
    """Remove an earlier demo's copies from the demo server: today's CSV of this run differs from that one's,
    and the server would rightly refuse to replace a day's file with another (so demo can run again and again)."""
    if station_folder.is_dir():
        shutil.rmtree(station_folder)
        log.info("demo: removed the previous demo's copies under %s", station_folder)


def _remote_file(ftp_root: Path, options: UploaderOptions, local: Path, outbox: Path) -> Path:
    from operators.remote_path import remote_path_for

    remote = remote_path_for(
        local.relative_to(outbox).as_posix(),
        remote_root=options.ftp.remote_root,
        station=options.station,
        mtime=time.time(),  # every simulated name carries its date
    )
    assert remote is not None
    return ftp_root / remote.lstrip("/")
