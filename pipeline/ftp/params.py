"""The plain values an FTP(S) transport runs on: where to connect and how (`FtpParams`).

How the sink behaves (`UploadPolicy`) is the sink's: `pipeline.sink.policy`.

Frozen and picklable, so the composition root builds them once from the settings and a spawned sink
process receives them as they are. The password never appears in a repr (logs print these objects).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from operators.choices import TLS_MODES
from pipeline.transport.masking import masked_repr


@dataclass(frozen=True, slots=True)
class FtpParams:
    """One FTP(S) account: host, credentials, the remote root, TLS, timeouts and the transfer block size.

    `tls`: "none" (plain FTP), "explicit" (AUTH TLS on the control port, then PROT P) or "implicit"
    (TLS from the first byte, usually port 990). Certificates are verified unless `verify` is False,
    against `ca_file` when set, else the system's authorities. `pipelining` lets a session send
    commands that need no answer in between together (STOR while the data connection opens, and
    on plain FTP a small file's data before the 150; RNFR, RNTO, SIZE, the server's HASH and the
    next file's EPSV in one flight): two round trips per file instead of six; turn it off for a
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
        return masked_repr(self, "password")

    __str__ = __repr__

    @property
    def secure(self) -> bool:
        return self.tls != "none"

    @property
    def login_check(self) -> str:
        """What to check when the login is refused (every transport's params say it for their settings)."""
        if self.secure:
            return (
                f"check ftp.username ({self.username!r}) and the password (BEEMON_FTP__PASSWORD or .secrets.toml),"
                " ftp.tls, ftp.ca_file and ftp.verify"
            )
        return (
            f"check ftp.username ({self.username!r}) and the password"
            " (BEEMON_FTP__PASSWORD or .secrets.toml), and ftp.tls"
        )

    @property
    def reach_check(self) -> str:
        """What to check when the server cannot be reached."""
        return "check ftp.host, ftp.port and the network"
