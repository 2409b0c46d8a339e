"""What one FTP server offers beyond RFC 959, learned once per session from FEAT and kept here.

Today that is how a delivered file can be checked: by the server's own hash of it (the IETF
draft's `HASH`, with `OPTS HASH SHA-256`, or the older `XSHA256`), else by its size (SIZE, MLST),
else not at all. Parsing is pure (tested without sockets); the session sends FEAT and hands the reply here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The checks a delivery can have, strongest first.
CHECKS = ("hash", "size", "none")
_HASH_LINE = re.compile(r"^\s*HASH\s+(?P<algorithms>\S+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """The FEAT reply, read: the commands listed, and the HASH algorithms (upper case, "*" removed)."""

    commands: frozenset[str] = frozenset()
    hash_algorithms: tuple[str, ...] = ()
    #: the algorithm the HASH command uses before any OPTS HASH (the one FEAT marks with "*")
    hash_default: str = ""

    @classmethod
    def parse(cls, reply: str) -> ServerFeatures:
        """Read a `211-Features: ... 211 End` reply; an empty or refused FEAT gives no features."""
        commands: set[str] = set()
        algorithms: tuple[str, ...] = ()
        default = ""
        for line in reply.splitlines():
            if not line.startswith(" "):  # the 211 lines; features are indented by one space
                continue
            words = line.split()
            if not words:
                continue
            commands.add(words[0].upper())
            match = _HASH_LINE.match(line)
            if match:
                names = [name for name in match.group("algorithms").split(";") if name]
                algorithms = tuple(name.rstrip("*").upper() for name in names)
                default = next((name.rstrip("*").upper() for name in names if name.endswith("*")), "")
        return cls(frozenset(commands), algorithms, default)

    @property
    def sha256_command(self) -> str | None:
        """How to ask this server for a file's SHA-256: "HASH" (the draft), "XSHA256", or None."""
        if "HASH" in self.commands and "SHA-256" in self.hash_algorithms:
            return "HASH"
        if "XSHA256" in self.commands:
            return "XSHA256"
        return None

    def check(self, *, checksum: bool, can_size: bool) -> str:
        """The check a delivery gets here (one of `CHECKS`): "hash" needs `checksum` and a SHA-256 command."""
        if checksum and self.sha256_command is not None:
            return "hash"
        return "size" if can_size else "none"
