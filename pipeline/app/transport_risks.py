"""Start-up warnings for an FTP target that exposes the password or the files on their way.

Plain FTP sends the password and every file as clear text: harmless on loopback, a risk on any
real network. TLS without certificate checks encrypts, but to whoever answers. Both are allowed
(a private link, a test server), so they are warnings, once at start, naming the risk and the fix.
"""

from __future__ import annotations

import ipaddress

from pipeline.ftp.params import FtpParams


def is_loopback(host: str) -> bool:
    """Whether `host` is this machine by its name or address (no DNS lookup: a name that is not
    `localhost` counts as remote, the safe side for a warning)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def transport_risks(ftp: FtpParams) -> list[str]:
    """One line per risk of this target; empty when there is none."""
    if ftp.tls == "none":
        if is_loopback(ftp.host):
            return []
        return [
            f"ftp.tls = none: the password and every file travel to {ftp.host} unencrypted, readable and "
            "alterable by anyone on the network; set ftp.tls = explicit (or implicit) unless the link is private"
        ]
    if not ftp.verify:
        return [
            f"ftp.verify = false: the certificate of {ftp.host} is not checked, so anyone on the path can pose as "
            "the server and collect the password; give its authority with ftp.ca_file and turn ftp.verify back on"
        ]
    return []
