"""Directories: remote folders made at most once per connection, with a cache of those known to exist.

A missing chain of folders (a new date with its sensor folder) costs one round trip when pipelining:
one MKD per level, top down, and a CWD into the deepest, in one flight; the CWD's answer says whether
the chain exists now ("already exists" refusals are fine); an upload's chain asks its data port in
that flight too (EPSV), so a session's first file costs no round trip for it. Should the CWD be refused, the folders
are walked one at a time to name the one that cannot be made (as without pipelining): up from the
deepest to the first that exists, then down. "Already exists" is success (521 says so; a 550 needs
one CWD to tell). The cache is cleared at every connect and forgotten for a path the server lost
behind the session's back.
"""

from __future__ import annotations

import posixpath

from pipeline.ftp.connection import Connection
from pipeline.ftp.errors import PermanentFailure
from pipeline.ftp.replies import EPSV_REFUSED, reply_code, reply_error


class Directories:
    """The folders of one connection's server that are known to exist (see the module docstring)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.known: set[str] = set()
        #: a folder made in the login's flight (`chain_answered`), new and empty until the first delivery into it
        self._made_ahead: str | None = None

    def clear(self) -> None:
        """Forget every folder (a new connection: the server may have changed meanwhile)."""
        self.known.clear()
        self._made_ahead = None

    def make_directory(self, name: str) -> bool:
        """Create one remote directory unless it exists ("already exists" is success); cached.

        Returns True when this call created it. The original API returned an error string; this
        raises `PermanentFailure` with the reply.
        """
        path = self.connection.absolute(name)
        if path in self.known or path == "/":
            return False
        created = True
        try:
            self.connection.command(f"MKD {path}")
        except PermanentFailure as failure:
            if not self._exists_after_refusal(path, failure):
                raise PermanentFailure(f"cannot create {path}: {failure.reply}", command="MKD") from None
            created = False
        self.remember(path)
        return created

    def make_remote_directories(self, remote_dir: str, *, port_ahead: bool = False) -> bool:
        """Make `remote_dir` and any missing parents (`<root>/<station>/<date>/<sensor>`), once.

        One flight when pipelining (see the module docstring), else (or when that flight's CWD is
        refused) walks up from the deepest folder to the first that exists, then creates downwards.
        Returns True when this call created `remote_dir` itself (so it is empty), or the login's flight did
        just before (`chain_answered`, `ahead`) and this is the first call since. `port_ahead`: a
        transfer follows, so that flight asks its data port too (no round trip of its own for it).
        """
        path = self.connection.absolute(remote_dir)
        made_ahead, self._made_ahead = self._made_ahead, None
        if path == "/" or path in self.known:
            return path == made_ahead  # made in the login's flight: still new to its first delivery
        if self.connection.params.pipelining:
            made = self._chain_in_one_flight(path, port_ahead)
            if made is not None:
                return made
        return self._walk(path)

    def _chain_in_one_flight(self, path: str, port_ahead: bool) -> bool | None:
        """MKD every unknown level of `path` top down and CWD into it, in one flight; whether `path` was
        created, or None when neither the MKD of `path` nor the CWD succeeded (the caller walks the
        folders to find out why)."""
        passive = self.connection.passive_request((lambda: True) if port_ahead else None)
        lines = self.chain_lines(path, passive)
        return self.chain_answered(path, passive, self.connection.batch(lines))

    def chain_lines(self, path: str, passive: str | None) -> list[str]:
        """The flight that makes `path` (absolute): an MKD per unknown level, top down, a CWD into it, and
        `passive` (the data port's command) when given."""
        chain: list[str] = []
        current = path
        while current != "/" and current not in self.known:
            chain.append(current)
            current = posixpath.dirname(current)
        chain.reverse()
        return [*(f"MKD {folder}" for folder in chain), f"CWD {path}", *([passive] if passive is not None else [])]

    def chain_answered(self, path: str, passive: str | None, replies: list[str], *, ahead: bool = False) -> bool | None:
        """Read the replies to `chain_lines`: whether `path` was created, None when it is not known to exist.

        `ahead`: the chain rode in the login's flight; a `path` it created is reported new to the next
        `make_remote_directories` of it."""
        replies = list(replies)
        if passive is not None:
            self._keep_port(replies.pop(), passive)
        created = replies[-2].startswith("2")
        if not created and not replies[-1].startswith("2"):
            return None
        self.remember(path)
        if ahead and created:
            self._made_ahead = path
        return created

    def _keep_port(self, reply: str, command: str) -> None:
        """Keep the port the chain's flight asked for; a refusal that is not "no EPSV here" (a 421: the server
        is closing the session) fails the upload now, as it would have asked alone."""
        if reply[:1] in ("4", "5") and reply_code(reply) not in EPSV_REFUSED:
            raise self.connection.classify(reply_error(reply), command)
        self.connection.keep_passive(reply)

    def _walk(self, path: str) -> bool:
        """`make_remote_directories` one command at a time: up to the first folder that exists, then down."""
        missing: list[str] = []
        current = path
        created = False
        while current != "/" and current not in self.known:
            try:
                self.connection.command(f"MKD {current}")
                created = current == path
                break
            except PermanentFailure as failure:
                if self._exists_after_refusal(current, failure):
                    break
            missing.append(current)
            current = posixpath.dirname(current)
        self.remember(current)
        for directory in reversed(missing):
            created = self.make_directory(directory)
        return created

    def _exists_after_refusal(self, path: str, failure: PermanentFailure) -> bool:
        """Whether a refused MKD means "already exists": 521 says so; a 550 needs one CWD to tell."""
        if reply_code(failure.reply) == 521:
            return True
        try:
            self.connection.command(f"CWD {path}")
        except PermanentFailure:
            return False
        return True

    def is_directory(self, remote_path: str) -> bool:
        """Whether `remote_path` is an existing folder on the server (known, or one CWD to tell)."""
        path = self.connection.absolute(remote_path)
        if path == "/" or path in self.known:
            return True
        try:
            self.connection.command(f"CWD {path}")
        except PermanentFailure:
            return False
        self.remember(path)
        return True

    def target_in_folder(self, remote_path: str, name: str) -> str:
        """Where a file called `name` sent to `remote_path` lands: inside it when it is a folder (named with
        a trailing "/" or existing on the server), else at `remote_path` itself."""
        if remote_path.endswith("/") or self.is_directory(remote_path):
            return posixpath.join(remote_path, name)
        return remote_path

    def remember(self, path: str) -> None:
        """`path` exists, so do all its parents."""
        while path != "/" and path not in self.known:
            self.known.add(path)
            path = posixpath.dirname(path)

    def forget(self, path: str) -> None:
        """Drop `path` and its parents from the cache (the server lost them behind the session's back)."""
        path = self.connection.absolute(path)
        while path != "/":
            self.known.discard(path)
            path = posixpath.dirname(path)
