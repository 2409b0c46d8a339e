"""What a server supports, as a session has learned it: one small state machine, kept in one place.

Every fact starts optimistic and flips once, by a named transition, when the server says no (the
way h11's `_state.py` keeps a connection's state): the code that meets a refusal calls the
transition, and the code that chooses a command asks a property. Each flip is logged once.

- SIZE, then MLST: how a remote file's size is asked (`probe_command`); with neither, uploads are
  trusted on the server's "226" and reported unverified (`warn_unverified` says when to log it).
- EPSV, else PASV: learned per control connection (`new_connection` forgets it), as before: a
  reconnect may meet another route or middlebox.
- Resumes: a server that refused a resumed STOR and took the whole file instead is sent whole
  files from then on (`resumes_refused`).

- What FEAT lists beyond RFC 959 (`Feat`, read once per connection): today, how a delivered file
  can be checked: by the server's own hash of it (the IETF draft's `HASH`, with `OPTS HASH SHA-256`,
  or the older `XSHA256`), else by its size (SIZE, MLST), else not at all.

Pure: no socket, no ftplib; `tests/ftp/test_features.py` drives it alone.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

log = logging.getLogger("beemon.sink.session")


class ServerFeatures:
    """What one server supports, as far as one session knows (see the module docstring)."""

    def __init__(self, where: str = "the server") -> None:
        self.where = where
        self.size = True
        self.mlst = True
        self.epsv = True
        self.resumes_refused = False
        self._warned_unverified = False

    def __repr__(self) -> str:
        flags = {"SIZE": self.size, "MLST": self.mlst, "EPSV": self.epsv, "resume": not self.resumes_refused}
        return f"ServerFeatures({self.where}: {', '.join(f'{k}={v}' for k, v in flags.items())})"

    # --- questions

    @property
    def can_size(self) -> bool:
        """Whether the server can tell a file's size (SIZE or MLST) as far as is known."""
        return self.size or self.mlst

    @property
    def probe_command(self) -> str | None:
        """The command that tells a file's size here (SIZE, else MLST), None when there is none."""
        return "SIZE" if self.size else "MLST" if self.mlst else None

    @property
    def passive_command(self) -> str:
        """The command that opens a passive data port: EPSV, or PASV once EPSV was refused."""
        return "EPSV" if self.epsv else "PASV"

    # --- transitions

    def new_connection(self) -> None:
        """A new control connection: the passive mode is learned again (the rest holds for the server)."""
        self.epsv = True

    def size_unsupported(self, reply: str) -> None:
        """SIZE was refused as unknown: ask MLST from now on."""
        if self.size:
            self.size = False
            log.debug("server has no SIZE command (%s); trying MLST", reply.strip())

    def mlst_unsupported(self, reply: str) -> None:
        """MLST was refused as unknown too (or instead)."""
        if self.mlst:
            self.mlst = False
            log.debug("server has no MLST command either (%s)", reply.strip())

    def probe_unsupported(self, command: str | None, reply: str) -> None:
        """The size probe `command` (`probe_command` when it was sent) was refused as unknown."""
        if command == "SIZE":
            self.size_unsupported(reply)
        elif command == "MLST":
            self.mlst_unsupported(reply)

    def epsv_refused(self, reply: str) -> None:
        """EPSV was refused: PASV for the rest of this connection."""
        if self.epsv:
            self.epsv = False
            log.debug("server refused EPSV (%s); using PASV", reply.strip())

    def resume_refused(self, refusal: str) -> None:
        """A resumed STOR was refused and the whole file accepted: send whole files from now on."""
        if not self.resumes_refused:
            self.resumes_refused = True
            log.info("%s refuses to resume uploads (%s): cut uploads are sent again whole", self.where, refusal)

    def warn_unverified(self) -> bool:
        """True the first time an upload could not be verified (neither SIZE nor MLST): log it then, once."""
        first, self._warned_unverified = not self._warned_unverified, True
        return first


#: The checks a delivery can have, strongest first.
CHECKS = ("hash", "size", "none")
_HASH_LINE = re.compile(r"^\s*HASH\s+(?P<algorithms>\S+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Feat:
    """The FEAT reply, read: the commands listed, and the HASH algorithms (upper case, "*" removed)."""

    commands: frozenset[str] = frozenset()
    hash_algorithms: tuple[str, ...] = ()
    #: the algorithm the HASH command uses before any OPTS HASH (the one FEAT marks with "*")
    hash_default: str = ""

    @classmethod
    def parse(cls, reply: str) -> Feat:
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
