"""A scripted connection: the real `Connection` with its wire replaced by a list of (command, reply).

For the delivery steps' decisions (which command, in which flight, what a reply means), read
without sockets. The error map, the features and the reply parsing stay the real ones; transfers
(STOR and its data connection) are tested against the loopback server instead.
"""

from __future__ import annotations

import ftplib
from collections import deque
from collections.abc import Callable
from pathlib import Path

from pipeline.ftp.connection import Connection
from pipeline.ftp.delivery import Parts, Upload
from pipeline.ftp.directories import Directories
from pipeline.ftp.params import FtpParams
from pipeline.ftp.replies import reply_error
from pipeline.ftp.sizes import RemoteSizes
from pipeline.ftp.store import DataSender
from pipeline.transport.base import Delivery, DeliveryProgress


class ScriptedConnection(Connection):
    """Answers each command with the next scripted reply, after checking it is the command expected."""

    def __init__(self, script: list[tuple[str, str]], *, pipelining: bool = True) -> None:
        super().__init__(FtpParams("station.invalid", remote_root="/upload", pipelining=pipelining))
        self.script = deque(script)
        self.flights: list[list[str]] = []
        self.kept_passive: str | None = None

    def _answer(self, line: str) -> str:
        assert self.script, f"unscripted command {line!r}"
        expected, reply = self.script.popleft()
        assert line == expected, f"sent {line!r}, the script expected {expected!r}"
        return reply

    def command(self, line: str) -> str:
        self.flights.append([line])
        reply = self._answer(line)
        if reply[:1] in ("4", "5"):
            with self.mapped(line):
                raise reply_error(reply)
        return reply

    def query(self, line: str) -> str:
        self.flights.append([line])
        reply = self._answer(line)
        if reply[:1] == "5":
            raise ftplib.error_perm(reply)
        return reply

    def batch(self, lines: list[str]) -> list[str]:
        self.flights.append(list(lines))
        return [self._answer(line) for line in lines]

    def passive_request(self, next_upload: Callable[[], bool] | None) -> str | None:
        held = self.kept_passive is not None
        return self.features.passive_command if next_upload is not None and not held and next_upload() else None

    def keep_passive(self, reply: str) -> None:
        self.kept_passive = reply

    @property
    def sent(self) -> list[str]:
        return [line for flight in self.flights for line in flight]


def scripted_upload(
    connection: ScriptedConnection, local: Path, remote: str = "st/d/audio/a.wav", **delivery: object
) -> Upload:
    """An `Upload` of `local` on `connection` (whose folder cache already knows the target's folder)."""
    directories = Directories(connection)
    directories.remember(connection.absolute(remote).rsplit("/", 1)[0])
    parts = Parts(connection, directories, RemoteSizes(connection), DataSender(connection.params.blocksize))
    size = delivery.pop("size", local.stat().st_size if local.exists() else 0)
    return Upload(parts, Delivery(str(local), remote, size, **delivery), DeliveryProgress())
