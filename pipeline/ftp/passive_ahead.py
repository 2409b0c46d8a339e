"""PassiveAhead: `Connection`'s passive port asked ahead, in the flight before the transfer that uses it.

Apart from the connection's opening and its commands because it is a pipelining saving with a hazard
of its own: a port asked for and then not used (no upload followed) must be closed, or a server that
times it out (pyftpdlib) sends an unrequested 421 that puts the connection out of step. The address
itself is kept by `FtpClient` (`passive_ahead`), which opens the next data connection on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.ftp.client import FtpClient
from pipeline.ftp.errors import FtpFailure


class PassiveAhead:
    """The passive-port methods of `Connection` (a mixin: it uses the connection's client and commands)."""

    client: FtpClient | None

    if TYPE_CHECKING:

        def require(self) -> FtpClient: ...

        def command(self, line: str) -> str: ...

    def passive_request(self, next_upload: Callable[[], bool] | None) -> str | None:
        """The EPSV/PASV to add to a flight when another upload follows (`next_upload()`) and no port is held."""
        client = self.require()
        if next_upload is not None and client.passive_ahead is None and next_upload():
            return client.passive_command
        return None

    def keep_passive(self, reply: str) -> None:
        """Keep the address of the reply to `passive_request`'s command for the next transfer."""
        self.require().take_passive_reply(reply)

    def drop_passive(self) -> None:
        """Close a passive port asked for ahead that no transfer used.

        Servers time an unused passive port out, and some (pyftpdlib) then send an unrequested 421
        that would put the connection out of step. ABOR closes it; one round trip, rarely needed.
        """
        client = self.client
        if client is None or client.passive_ahead is None:
            return
        client.passive_ahead = None
        with contextlib.suppress(FtpFailure):  # refused: the port times out on its own; lost: discarded
            self.command("ABOR")
