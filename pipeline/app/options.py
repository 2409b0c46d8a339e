"""The composition root's one read of the settings, turned into plain picklable values.

Everything downstream (the stream, the sink process, the embedded server) receives these values,
never the settings object: a spawned child gets them by pickling, and tests build them directly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from operators.choices import DEFAULT_IGNORE_PATTERNS
from pipeline.ftp.params import FtpParams
from pipeline.s3.params import S3Params
from pipeline.sftp.params import SftpParams
from pipeline.sink.policy import UploadPolicy
from pipeline.stream.scan import ORPHAN_CSV_AFTER_SECONDS

EMBEDDED = "embedded"
#: Where the embedded server keeps what it receives (development runs and `demo`).
EMBEDDED_ROOT = "./var/ftp-root"


@dataclass(frozen=True)
class UploaderOptions:
    """What an `Uploader` needs to run: the outbox, the stream's knobs, the target (`sink.kind`) and policy.

    `ftp` is always there (the original API's helpers read it); `sftp` or `s3` when `kind` names them.
    """

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
    #: below this free share of the outbox's file system: one warning per crossing (0: never)
    min_free_percent: float = 10.0
    kind: str = "ftp"
    sftp: SftpParams | None = None
    s3: S3Params | None = None

    @property
    def target(self) -> FtpParams | SftpParams | S3Params:
        """The params of the server files go to: the table `sink.kind` names."""
        chosen = {"ftp": self.ftp, "sftp": self.sftp, "s3": self.s3}[self.kind]
        if chosen is None:
            raise ValueError(f"sink.kind = {self.kind!r} but no [{self.kind}] settings were given")
        return chosen

    @property
    def embedded(self) -> bool:
        """Whether `run` starts the built-in loopback server (`ftp.host = "embedded"`)."""
        return self.kind == "ftp" and self.ftp.host == EMBEDDED

    def replace(self, **changes: Any) -> UploaderOptions:
        return dataclasses.replace(self, **changes)


def options_from_settings(settings: Any) -> UploaderOptions:
    """Read every key once. With the embedded server and no password set, make a random one."""
    ftp = settings.ftp
    upload = settings.upload
    watch = settings.watch
    password = ftp.get("password") or ""
    kind = str(settings.get("sink.kind") or "ftp")
    connections = int({"ftp": ftp, "sftp": settings.sftp, "s3": settings.s3}[kind].connections)
    if ftp.host == EMBEDDED and not password:
        import secrets  # only here: secrets imports hmac, and hmac OpenSSL's libcrypto (1-2 MB of an idle `run`)

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
            connections=connections,
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
        min_free_percent=float(watch.get("min_free_percent", 10)),
        kind=kind,
        sftp=_sftp_params(settings.sftp) if kind == "sftp" else None,
        s3=_s3_params(settings.s3, str(settings.station)) if kind == "s3" else None,
    )


def _sftp_params(sftp: Any) -> SftpParams:
    return SftpParams(
        host=str(sftp.host),
        port=int(sftp.port),
        username=str(sftp.username),
        password=str(sftp.get("password") or ""),
        key_file=str(sftp.key_file),
        known_hosts=str(sftp.known_hosts),
        remote_root=str(sftp.remote_root),
        timeout=float(sftp.timeout_seconds),
    )


def _s3_params(s3: Any, station: str) -> S3Params:
    return S3Params(
        bucket=str(s3.bucket),
        endpoint_url=str(s3.endpoint_url),
        region=str(s3.region),
        prefix=str(s3.prefix),
        access_key_id=str(s3.access_key_id),
        secret_access_key=str(s3.get("secret_access_key") or ""),
        station=station,
        multipart_threshold_mb=float(s3.multipart_threshold_mb),
        part_size_mb=float(s3.part_size_mb),
        timeout=float(s3.timeout_seconds),
    )
