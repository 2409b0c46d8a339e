"""The composition root's one read of the settings, turned into plain picklable values.

Everything downstream (the stream, the sink process, the embedded server) receives these values,
never the settings object: a spawned child gets them by pickling, and tests build them directly.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import Any

from pipeline.ftp.params import FtpParams, UploadPolicy
from pipeline.stream.backfill import ORPHAN_CSV_AFTER_SECONDS

EMBEDDED = "embedded"
#: Names never uploaded unless the settings say otherwise (`upload.ignore_patterns`).
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = (".*", "*.part", "*.tmp", "*~", "*.swp")
#: Where the embedded server keeps what it receives (development runs and `demo`).
EMBEDDED_ROOT = "./var/ftp-root"


@dataclass(frozen=True)
class UploaderOptions:
    """What an `Uploader` needs to run: the outbox, the stream's knobs, the FTP target and policy."""

    outbox: str
    station: str
    ftp: FtpParams
    policy: UploadPolicy
    observer: str = "inotify"
    polling_interval: float = 1.0
    debounce_seconds: float = 2.0
    ignore_patterns: tuple[str, ...] = DEFAULT_IGNORE_PATTERNS
    backfill_order: str = "newest"
    #: a past day's bare `.csv` this long quiet without its `.final` is sent as the day's file
    orphan_csv_after_seconds: float = ORPHAN_CSV_AFTER_SECONDS
    rescan_interval: float = 600.0
    metrics_port: int = 0
    stats_interval: float = 0.0
    embedded_root: str = EMBEDDED_ROOT

    @property
    def embedded(self) -> bool:
        """Whether `run` starts the built-in loopback server (`ftp.host = "embedded"`)."""
        return self.ftp.host == EMBEDDED

    def replace(self, **changes: Any) -> UploaderOptions:
        return dataclasses.replace(self, **changes)


def options_from_settings(settings: Any) -> UploaderOptions:
    """Read every key once. With the embedded server and no password set, make a random one."""
    ftp = settings.ftp
    upload = settings.upload
    watch = settings.watch
    password = ftp.get("password") or ""
    if ftp.host == EMBEDDED and not password:
        password = secrets.token_urlsafe(16)
    return UploaderOptions(
        outbox=str(settings.local_output_directory),
        station=str(settings.station),
        ftp=FtpParams(
            host=str(ftp.host),
            port=int(ftp.port),
            username=str(ftp.username),
            password=str(password),
            remote_root=str(ftp.remote_root),
            tls=str(ftp.tls),
            ca_file=str(ftp.ca_file),
            verify=bool(ftp.verify),
            timeout=float(ftp.timeout_seconds),
        ),
        policy=UploadPolicy(
            connections=int(ftp.connections),
            atomic_rename=bool(upload.atomic_rename),
            verify_size=bool(upload.verify_size),
            delete_after_upload=bool(upload.delete_after_upload),
            retry_base=float(upload.retry_base_seconds),
            retry_max=float(upload.retry_max_seconds),
            bandwidth_limit_kbps=float(upload.bandwidth_limit_kbps),
            idle_close_seconds=float(ftp.idle_close_seconds),
            stop_deadline_seconds=float(upload.get("stop_deadline_seconds", 10)),
            checksum=str(upload.checksum),
            manifest_interval_seconds=float(upload.manifest_interval_seconds),
        ),
        observer=str(watch.observer),
        polling_interval=float(watch.polling_interval_seconds),
        debounce_seconds=float(upload.debounce_seconds),
        ignore_patterns=tuple(upload.ignore_patterns),
        backfill_order=str(upload.backfill_order),
        orphan_csv_after_seconds=float(upload.orphan_csv_after_hours) * 3600.0,
        rescan_interval=float(watch.rescan_interval_seconds),
        metrics_port=int(settings.get("metrics.port") or 0),
    )
