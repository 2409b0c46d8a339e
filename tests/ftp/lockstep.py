"""A pyftpdlib server that counts the times a client had to wait for it: round trips, without a clock in the count.

`LockstepHandler` holds every reply back until the client has been quiet (no command byte, no data
byte, no data connection) for `Waits.quiet` seconds, then releases all it holds at once and writes
("WAIT", "") into the journal. A client that has something left to send never goes quiet, so each
release is one time it stopped for an answer: one round trip on a real link. The count is the same
whatever the machine's speed, unless the client stalls for `quiet` of its own (then it can only
grow), so a test asserts the exact number per file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pyftpdlib.handlers.ftp.dispatchers import PassiveDTP

from tests.ftp_faults import CuttingDTPHandler, Faults, FaultyHandler


@dataclass
class Waits(Faults):
    """`Faults` (its journal gains a ("WAIT", "") entry at each release) and the quiet time that ends a wait."""

    quiet: float = 0.25
    last_activity: float = field(default_factory=time.monotonic)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def per_transfer(self, command: str = "STOR") -> list[int]:
        """The waits between each `command` and the next one (the last `command` is not counted)."""
        counts: list[int] = []
        for cmd, _ in self.journal:
            if cmd == command:
                counts.append(0)
            elif cmd == "WAIT" and counts:
                counts[-1] += 1
        return counts[:-1]


class _LockstepDTP(CuttingDTPHandler):
    def handle_read(self) -> None:
        self.cmd_channel.faults.touch()
        super().handle_read()

    handle_read_event = handle_read


class _LockstepPassive(PassiveDTP):
    def handle_accepted(self, sock: object, addr: object) -> None:
        self.cmd_channel.faults.touch()
        super().handle_accepted(sock, addr)


class LockstepHandler(FaultyHandler):
    """Plain FTP; replies released only when the client waits for them (see the module docstring)."""

    dtp_handler = _LockstepDTP
    passive_dtp = _LockstepPassive
    faults: Waits

    def handle_read(self) -> None:
        self.faults.touch()
        super().handle_read()

    def push(self, data: str) -> None:
        held: list[str] = self.__dict__.setdefault("_held", [])
        held.append(data)
        if len(held) == 1:
            self.ioloop.call_later(self.faults.quiet, self._release)

    def _release(self) -> None:
        if self._closed:
            return
        idle = time.monotonic() - self.faults.last_activity
        if idle < self.faults.quiet:
            self.ioloop.call_later(self.faults.quiet - idle, self._release)
            return
        held, self._held = self._held, []
        self.faults.journal.append(("WAIT", ""))
        self.faults.flights.append(-1)
        for data in held:
            super().push(data)
        if self.__dict__.pop("_close_after_release", False):
            super().close_when_done()

    def close_when_done(self) -> None:
        if self.__dict__.get("_held"):
            self._close_after_release = True
        else:
            super().close_when_done()
