"""`demo` with sink.kind = "sftp" or "s3": a simulated station, the real uploader, the configured server.

There is no embedded SFTP or S3 server: the files go to the server the settings name, under the
station name `rpi4-demo`, and are read back through the same transport to compare their SHA-256
with what the station wrote. They stay on the server (remove `<remote root>/rpi4-demo` by hand).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from operators.remote_path import remote_path_for
from pipeline.app.options import UploaderOptions
from pipeline.app.stats import UploadStats
from pipeline.app.uploader import RunningPipeline
from pipeline.cli.demo import report_summary
from pipeline.dev.station_simulator import StationSimulator
from pipeline.outbox.lock import OutboxLock
from pipeline.sink.transports import make_transport
from pipeline.transport.errors import TransportFailure

log = logging.getLogger("beemon.demo")
STATION = "rpi4-demo"
#: How long the demo waits, after the station stops, for the last files to arrive.
DRAIN_SECONDS = 60.0


def run_remote_demo(options: UploaderOptions, *, var: Path, duration: float) -> int:
    """Exit 0 when every file the station wrote arrived byte-identical, 1 otherwise."""
    outbox = var / "outbox"
    options = replace(
        options,
        outbox=str(outbox),
        station=STATION,
        debounce_seconds=min(options.debounce_seconds, 1.0),
        s3=replace(options.s3, station=STATION) if options.s3 is not None else None,
    )
    stats = UploadStats()
    station = StationSimulator(outbox, station=STATION)
    log.info("demo: station writing into %s for %.0f s; uploading over %s", outbox, duration, options.kind)
    with OutboxLock(str(outbox)), RunningPipeline(options, stats):
        station.start()
        time.sleep(duration)
        written = station.stop()
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline and any(p.exists() for p in written):
            time.sleep(0.2)
    transport: Any = make_transport(options.target)
    missing: list[Path] = []
    try:
        transport.connect()
        print(f"\nfiles on the server ({options.kind}):")
        for path, digest in written.items():
            remote = _remote(options, path, outbox)
            try:
                content = transport.read(remote)
            except TransportFailure:
                missing.append(path)
                continue
            if hashlib.sha256(content).hexdigest() != digest:
                missing.append(path)
            print(f"  {remote}  {len(content)} B")
    except TransportFailure as failure:
        print(f"cannot read the files back: {failure}")
        missing = list(written)
    finally:
        transport.close()
    return report_summary(written, missing, stats)


def _remote(options: UploaderOptions, local: Path, outbox: Path) -> str:
    remote = remote_path_for(
        local.relative_to(outbox).as_posix(),
        remote_root=options.target.remote_root,
        station=options.station,
        mtime=time.time(),  # every simulated name carries its date
    )
    assert remote is not None
    return remote
