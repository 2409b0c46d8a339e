"""How the sink behaves, whatever the transport (`UploadPolicy`): a plain, frozen, picklable value.

The composition root builds it once from the settings; a spawned sink process receives it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.choices import CHECKSUMS

#: After the stop deadline cut the transfers, how long workers get to report and close (the parent
#: waits this much longer for the child: `pipeline.sink.process`).
ABORT_GRACE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class UploadPolicy:
    """How the sink behaves: parallel sessions, the safety steps, retries, bandwidth, idle and stop timing.

    `retry_base`/`retry_max` bound the exponential backoff (full jitter) of reconnects and of failed
    jobs; a job that fails permanently is retried every `retry_max` seconds. `bandwidth_limit_kbps` is
    in kilobits per second (1000 bits) across all sessions, 0 for none. `idle_noop_seconds` is how
    long a session may sit idle before a NOOP keeps it alive; `idle_close_seconds` how long before
    it is closed, unless it is the last one open (kept warm for the next file, so that stations
    sharing a server leave it the slots they do not use); `stop_deadline_seconds` the default
    time `stop()` gives in-flight transfers. `use_sendfile` lets plain-FTP transfers use
    `socket.sendfile` (zero-copy, less CPU); TLS transfers always copy through user space.
    `connect_attempts` > 0 makes the sink give up (`SinkGaveUp`) after that many failed connection
    attempts in a row, one session probing at a time on the backoff schedule, and at the first
    refused login; 0 (a running service) keeps trying for as long as it takes.
    """

    connections: int = 4
    atomic_rename: bool = True
    verify_size: bool = True
    delete_after_upload: bool = True
    retry_base: float = 1.0
    retry_max: float = 300.0
    bandwidth_limit_kbps: float = 0
    idle_noop_seconds: float = 30.0
    idle_close_seconds: float = 60.0
    stop_deadline_seconds: float = 10.0
    use_sendfile: bool = True
    connect_attempts: int = 0
    #: "sha256": hash each file while it is sent, check it by the server's hash where offered, keep a
    #: per-day SHA256SUMS on the server; "none": size checks only, no manifest
    checksum: str = "sha256"
    #: while a day's manifest has changed, upload it at most this often (and when the day's queue drains)
    manifest_interval_seconds: float = 600.0

    def __post_init__(self) -> None:
        if self.connections < 1:
            raise ValueError(f"connections must be at least 1, not {self.connections}")
        if self.retry_base <= 0 or self.retry_max < self.retry_base:
            raise ValueError(f"need 0 < retry_base <= retry_max, got {self.retry_base} and {self.retry_max}")
        if self.bandwidth_limit_kbps < 0:
            raise ValueError(f"bandwidth_limit_kbps must not be negative, not {self.bandwidth_limit_kbps}")
        if self.checksum not in CHECKSUMS:
            raise ValueError(f"checksum must be one of {', '.join(CHECKSUMS)}, not {self.checksum!r}")
        if self.connect_attempts < 0:
            raise ValueError(f"connect_attempts must not be negative, not {self.connect_attempts}")
        if self.idle_noop_seconds <= 0 or self.idle_close_seconds <= 0 or self.stop_deadline_seconds < 0:
            raise ValueError(
                "idle_noop_seconds and idle_close_seconds must be positive and stop_deadline_seconds not negative"
            )

    @property
    def bandwidth_bytes_per_second(self) -> float:
        """The limit in bytes per second, 0 for none."""
        return self.bandwidth_limit_kbps * 125.0
