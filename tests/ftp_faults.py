"""Fault-injecting pyftpdlib handlers: a real server that misbehaves on cue, instead of a mocked client.

One `Faults` object per test holds the knobs, the counters and a journal of every command the
server received; pass it to `EmbeddedFtpServer(..., handler_attributes={"faults": faults})` with
`FaultyHandler` (plain) or `FaultyTLSHandler` (FTPS). Every knob defaults to "behave".
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from pyftpdlib.handlers import DTPHandler, FTPHandler, TLS_FTPHandler
from pyftpdlib.log import logger


@dataclass
class Faults:
    """What the server should get wrong. Counters count down as faults fire (the server's thread only)."""

    #: (command, argument) of every command received, in arrival order; ("CUT", bytes) for each cut.
    journal: list[tuple[str, str]] = field(default_factory=list)
    #: for each command in `journal`, the number of the socket read it arrived in (same number: one flight).
    flights: list[int] = field(default_factory=list)
    reads: int = 0
    #: answer "421 Too many connections" to this many PASS commands, then behave.
    logins_421: int = 0
    #: replies for the next STOR/APPE commands, one each (e.g. "452 No space left on device.").
    stor_replies: list[str] = field(default_factory=list)
    #: answer 550 to every STOR whose path contains one of these strings.
    deny_stor: tuple[str, ...] = ()
    #: answer every command named here with its reply, e.g. {"RNFR": "553 Renaming not allowed."}.
    refuse: dict[str, str] = field(default_factory=dict)
    #: answer the next commands of a name with these replies, one each, then behave (e.g. {"MKD": ["450 Busy."]}).
    once: dict[str, list[str]] = field(default_factory=dict)
    #: (command, a string in its argument, reply): the next such command gets the reply instead, once per entry
    #: (e.g. ("STOR", "SHA256SUMS", "550 Denied.") refuses the day's manifest once, not the recordings)
    refuse_once_for: list[tuple[str, str, str]] = field(default_factory=list)
    #: drop the control connection when the next command of each name arrives (it never runs), once per entry.
    drop_once: list[str] = field(default_factory=list)
    #: refuse RNTO onto an existing file (as some servers do) instead of replacing it.
    rnto_no_replace: bool = False
    #: behave as if SIZE (and, with `no_mlst`, MLST) were not implemented (500).
    no_size: bool = False
    no_mlst: bool = False
    #: cut the data connection once `cut_after_bytes` arrived, this many times.
    cut_after_bytes: int = 0
    cuts: int = 0
    #: the reply to a cut transfer; a 421 also closes the control connection, as a server going down does.
    cut_reply: str = "426 Data connection cut by the test server."
    #: hold the reply to a command (by name) this many seconds, once per entry.
    stall: dict[str, float] = field(default_factory=dict)
    #: hold every command named here until its event is set (e.g. PASS, to fill queues before uploads).
    hold: dict[str, threading.Event] = field(default_factory=dict)

    def commands(self, name: str) -> list[str]:
        """The arguments of every `name` command received, in order."""
        return [arg for cmd, arg in list(self.journal) if cmd == name]


class _FaultMixin:
    """The command-channel side of the faults, for FTPHandler and TLS_FTPHandler alike."""

    faults: Faults = Faults()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        """Journal the command, then handle it in arrival order: a held or stalled command holds up
        the ones pipelined behind it, as a real server's single command stream would."""
        self.faults.journal.append((cmd, arg))
        self.faults.flights.append(self.faults.reads)
        backlog: list[tuple[str, str, str]] = self.__dict__.setdefault("_backlog", [])
        backlog.append((line, cmd, arg))
        if len(backlog) == 1:
            self._drain()

    def handle_read(self) -> None:
        self.faults.reads += 1
        super().handle_read()  # type: ignore[misc]

    def _drain(self) -> None:
        faults = self.faults
        backlog: list[tuple[str, str, str]] = self.__dict__["_backlog"]
        while backlog and not self._closed:
            line, cmd, arg = backlog[0]
            gate = faults.hold.get(cmd)
            if gate is not None and not gate.is_set():
                self._later(0.02, self._drain)
                return
            if cmd in faults.stall:
                self._later(faults.stall.pop(cmd), self._drain)
                return
            backlog.pop(0)
            if cmd in faults.drop_once:
                faults.drop_once.remove(cmd)
                faults.journal.append(("DROP", cmd))
                self.close()
                return
            if (cmd == "SIZE" and faults.no_size) or (cmd == "MLST" and faults.no_mlst):
                self.respond(f'500 Command "{cmd}" not understood.')
            elif cmd in faults.refuse:
                self.respond(faults.refuse[cmd])
            elif hit := next((f for f in faults.refuse_once_for if f[0] == cmd and f[1] in arg), None):
                faults.refuse_once_for.remove(hit)
                self.respond(hit[2])
            elif faults.once.get(cmd):
                self.respond(faults.once[cmd].pop(0))
            else:
                super().pre_process_command(line, cmd, arg)  # type: ignore[misc]

    def ftp_PASS(self, line: str) -> None:
        faults = self.faults
        if faults.logins_421 > 0:
            faults.logins_421 -= 1
            self.respond("421 Too many connections. Service temporarily unavailable.")
            self.close_when_done()
            return
        super().ftp_PASS(line)  # type: ignore[misc]

    def _later(self, delay: float, function: Callable[..., None], *args: object) -> None:
        def run() -> None:
            if not self._closed:
                function(*args)

        self.ioloop.call_later(delay, run)

    def ftp_STOR(self, file: str, mode: str = "w") -> str | None:
        faults = self.faults
        if any(name in file for name in faults.deny_stor):
            self.respond("550 Permission denied by the test server.")
            return None
        if faults.stor_replies:
            self.respond(faults.stor_replies.pop(0))
            return None
        return super().ftp_STOR(file, mode)  # type: ignore[misc]

    def ftp_RNTO(self, path: str) -> object:
        if self.faults.rnto_no_replace and os.path.exists(path):
            self._rnfr = None
            self.respond("550 File exists.")
            return None
        return super().ftp_RNTO(path)  # type: ignore[misc]


class CuttingDTPHandler(DTPHandler):
    """The data-channel side (plain FTP): close the connection in the middle of an upload."""

    def handle_read(self) -> None:
        super().handle_read()
        faults: Faults = self.cmd_channel.faults
        received = self.tot_bytes_received
        if faults.cuts > 0 and faults.cut_after_bytes and received >= faults.cut_after_bytes:
            faults.cuts -= 1
            faults.journal.append(("CUT", str(received)))
            faults.flights.append(-1)
            self._resp = (faults.cut_reply, logger.info)
            self.close()
            if faults.cut_reply.startswith("421"):
                self.cmd_channel.close_when_done()

    handle_read_event = handle_read  # pyftpdlib's ioloop calls this alias, not handle_read


class FaultyHandler(_FaultMixin, FTPHandler):
    dtp_handler = CuttingDTPHandler


class FaultyTLSHandler(_FaultMixin, TLS_FTPHandler):
    """FTPS with the command-channel faults (no data-connection cuts)."""


class ImplicitTLSHandler(FaultyTLSHandler):
    """Implicit FTPS: TLS from the first byte (no AUTH), as on port 990."""

    def handle(self) -> None:
        self.secure_connection(self.ssl_context)
        super().handle()
