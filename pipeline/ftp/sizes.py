"""RemoteSizes: how big a remote file is, asked with SIZE, else MLST, as the server supports.

What the server supports is learned on the way (`ServerFeatures`): a SIZE refused as unknown is
not asked again, MLST is asked instead; with neither, sizes are None and `can_size` turns False.
Replies that came in a pipelined flight are read here too (`from_reply`, `probed`), alike.
"""

from __future__ import annotations

import ftplib

from pipeline.ftp.connection import Connection
from pipeline.ftp.errors import PermanentFailure
from pipeline.ftp.replies import is_unsupported, mlst_size, number_in_reply, reply_code, reply_error, size_in_reply


class RemoteSizes:
    """The size questions of one connection (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.features = connection.features

    @property
    def can_size(self) -> bool:
        """Whether this server can tell a file's size (SIZE or MLST) as far as is known."""
        return self.features.can_size

    def size(self, path: str) -> int | None:
        """The size of a remote file, None when it does not exist or the server cannot tell."""
        path = self.connection.absolute(path)
        if self.features.size:
            try:
                return number_in_reply(self.connection.command(f"SIZE {path}"))
            except PermanentFailure as failure:
                if not is_unsupported(failure.reply):
                    return None
                self.features.size_unsupported(failure.reply)
        if self.features.mlst:
            try:
                return mlst_size(self.connection.query(f"MLST {path}"))
            except ftplib.error_perm as error:
                if not is_unsupported(error):
                    return None
                self.features.mlst_unsupported(str(error))
        return None

    def from_reply(self, path: str, reply: str) -> int | None:
        """Read a SIZE reply that came in a pipelined flight, as `size` reads its own."""
        self._raise_if_for_now(reply, "SIZE")
        if is_unsupported(reply):
            self.features.size_unsupported(reply)
            return self.size(path)
        return size_in_reply(reply)

    def probed(self, path: str, command: str | None, reply: str) -> int | None:
        """Read the reply to a pipelined SIZE or MLST of `path` (`features.probe_command`)."""
        self._raise_if_for_now(reply, command or "SIZE")
        if command == "SIZE":
            return self.from_reply(path, reply)
        if reply_code(reply) == 250:
            return mlst_size(reply)
        if is_unsupported(reply):
            self.features.mlst_unsupported(reply)
        return None

    def _raise_if_for_now(self, reply: str, command: str) -> None:
        """A 4xx (busy, a local error, 421) says nothing of the file: raised as `size` raises it, not "no such file".

        Read as missing, a busy SIZE would let a day's manifest replace the server's without its lines,
        or an upload replace a file the overwrite guard had to protect.
        """
        if reply_code(reply) // 100 == 4:
            raise self.connection.classify(reply_error(reply), command)

    def many(self, paths: list[str]) -> list[int | None]:
        """`size` of several paths, in one flight when pipelining."""
        command = self.features.probe_command
        if not self.connection.params.pipelining or command is None or len(paths) < 2:
            return [self.size(path) for path in paths]
        replies = self.connection.batch([f"{command} {path}" for path in paths])
        return [self.probed(path, command, reply) for path, reply in zip(paths, replies, strict=True)]
