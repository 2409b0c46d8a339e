"""The plain values the FTP sink runs on: where to connect (`FtpParams`) and how to behave (`UploadPolicy`).

Frozen and picklable, so the composition root builds them once from the settings and a spawned sink
process receives them as they are. The password never appears in a repr (logs print these objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

TlsMode = Literal["none", "explicit", "implicit"]
TLS_MODES: tuple[str, ...] = ("none", "explicit", "implicit")
MASK = "***"
#: `upload.checksum`'s values
CHECKSUMS: tuple[str, ...] = ("sha256", "none")


@dataclass(frozen=True, slots=True)
class FtpParams:
    """One FTP(S) account: host, credentials, the remote root, TLS, timeouts and the transfer block size.

    `tls`: "none" (plain FTP), "explicit" (AUTH TLS on the control port, then PROT P) or "implicit"
    (TLS from the first byte, usually port 990). Certificates are verified unless `verify` is False,
    against `ca_file` when set, else the system's authorities. `pipelining` lets a session send
    commands that need no answer in between together (STOR while the data connection opens;
    RNFR, RNTO and SIZE in one flight): three round trips fewer per file; turn it off for a
    server or middlebox that mishandles it.
    """

    host: str
    port: int = 21
    username: str = ""
    password: str = field(default="", repr=False)
    remote_root: str = "/"
    tls: str = "none"
    ca_file: str = ""
    verify: bool = True
    timeout: float = 30.0
    blocksize: int = 1 << 20
    pipelining: bool = True

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(TLS_MODES)}, not {self.tls!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, not {self.port}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.blocksize <= 0:
            raise ValueError(f"blocksize must be positive, not {self.blocksize}")

    def __repr__(self) -> str:
        def shown(name: str) -> str:
            value = getattr(self, name)
            return repr(MASK) if name == "password" and value else repr(value)

        return f"FtpParams({', '.join(f'{f.name}={shown(f.name)}' for f in fields(self))})"

    __str__ = __repr__

    @property
    def secure(self) -> bool:
        return self.tls != "none"


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
