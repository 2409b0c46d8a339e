"""The systemd notify protocol: a few datagrams to ``$NOTIFY_SOCKET`` (see sd_notify(3)).

``READY=1`` once the uploader works, ``WATCHDOG=1`` while it is healthy, ``STATUS=`` a line for
``systemctl status``, ``RELOADING=1`` / ``STOPPING=1`` around a reload or a stop. The protocol is
one ``sendto`` on a unix datagram socket (an abstract one when the path starts with ``@``); see
docs/dependencies.rst for why these lines are ours rather than a library's.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("beemon.notify")


class SystemdNotifier:
    """Sends state lines to the service manager; every send is best effort (a lost datagram is logged once)."""

    def __init__(self, address: str) -> None:
        self.address = "\0" + address[1:] if address.startswith("@") else address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._failed = False

    @classmethod
    def from_environment(cls) -> SystemdNotifier | None:
        """The notifier systemd asked for (``NOTIFY_SOCKET``), or None when not run as a notify service."""
        address = os.environ.get("NOTIFY_SOCKET", "")
        return cls(address) if address.startswith(("/", "@")) else None

    def send(self, **fields: str | int) -> bool:
        """One datagram of ``KEY=value`` lines; `STATUS` is kept to one line."""
        lines = [f"{key}={str(value).replace(chr(10), ' ')}" for key, value in fields.items()]
        try:
            self._socket.sendto("\n".join(lines).encode(), self.address)
        except OSError as error:
            if not self._failed:
                log.warning("cannot reach systemd at NOTIFY_SOCKET %s: %s", self.address.lstrip("\0"), error)
            self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def reloading(self) -> bool:
        return self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> bool:
        return self.send(STOPPING=1)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def status(self, line: str) -> bool:
        return self.send(STATUS=line)

    def close(self) -> None:
        self._socket.close()


def watchdog_interval() -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None when systemd set no watchdog for us."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
