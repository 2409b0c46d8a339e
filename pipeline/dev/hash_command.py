"""The IETF draft's HASH command for pyftpdlib (SHA-256 only): the embedded server checks as ProFTPD's mod_digest.

FEAT lists `HASH SHA-256*`; `OPTS HASH SHA-256` selects it (any other algorithm is refused with
501); `HASH <path>` answers `213 SHA-256 0-<size> <hex> <path>`. The file is hashed in the server's
loop, which is fine for a development server and the small files of the demo.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pyftpdlib.handlers import FTPHandler

_BLOCK = 1 << 20
_HASH = {"HASH": dict(perm="r", auth=True, arg=True, help="Syntax: HASH <SP> file-name (its SHA-256).")}


def with_hash(handler: type[FTPHandler]) -> dict[str, dict[str, Any]]:
    """`handler`'s command table with HASH added (a TLS handler keeps its AUTH, PBSZ and PROT)."""
    return {**handler.proto_cmds, **_HASH}


class HashCommand(FTPHandler):
    """A mixin before an `FTPHandler` (or `TLS_FTPHandler`) class: HASH and OPTS HASH (with `with_hash`'s table)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._extra_feats = [*self._extra_feats, "HASH SHA-256*"]

    def ftp_OPTS(self, line: str) -> None:
        command, _, algorithm = line.partition(" ")
        if command.upper() != "HASH":
            super().ftp_OPTS(line)
        elif algorithm.strip().upper() in ("", "SHA-256"):
            self.respond("200 SHA-256")
        else:
            self.respond(f"501 Unsupported algorithm {algorithm.strip()!r}: only SHA-256.")

    def ftp_HASH(self, path: str) -> None:
        shown = self.fs.fs2ftp(path)
        if not self.fs.isfile(self.fs.realpath(path)):
            self.respond(f"550 {shown} is not a file.")
            return
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "rb") as data:
                while block := data.read(_BLOCK):
                    digest.update(block)
                    size += len(block)
        except OSError as error:
            self.respond(f"550 {error.strerror or error}.")
            return
        self.respond(f"213 SHA-256 0-{size} {digest.hexdigest()} {shown}")
