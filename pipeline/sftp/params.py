"""The plain values an SFTP transport runs on: one account on one SSH server.

Frozen and picklable (the sink process receives them as they are); the password never appears in
a repr. `host`, `port`, `username` and `password` carry the names the sink's messages use for
every transport; `login_check` and `reach_check` say which settings to look at.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pipeline.transport.masking import masked_repr


@dataclass(frozen=True, slots=True)
class SftpParams:
    """One SFTP account: host, user, a password or a key file, the known_hosts that vouch for the host key.

    `known_hosts` empty means the user's `~/.ssh/known_hosts`; the host key is always checked
    against it. `blocksize` is the size of one write request, `requests` how many are in flight
    at once (SFTP acknowledges each write: a window of them keeps a slow link busy).
    """

    host: str
    port: int = 22
    username: str = ""
    password: str = field(default="", repr=False)
    key_file: str = ""
    known_hosts: str = ""
    remote_root: str = "/"
    timeout: float = 30.0
    blocksize: int = 256 * 1024
    requests: int = 16
    kind: str = "sftp"

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, not {self.port}")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")
        if self.blocksize <= 0 or self.requests <= 0:
            raise ValueError("blocksize and requests must be positive")

    def __repr__(self) -> str:
        return masked_repr(self, "password")

    __str__ = __repr__

    @property
    def known_hosts_file(self) -> str:
        """The known_hosts file in force (the user's own when none is set)."""
        return self.known_hosts or os.path.expanduser("~/.ssh/known_hosts")

    @property
    def login_check(self) -> str:
        return (
            f"check sftp.username ({self.username!r}), sftp.key_file and the password"
            " (BEEMON_SFTP__PASSWORD or .secrets.toml)"
        )

    @property
    def reach_check(self) -> str:
        return "check sftp.host, sftp.port and the network"
