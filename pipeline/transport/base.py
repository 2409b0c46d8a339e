"""The narrow interface between the sink and a server: what every transport offers.

Modelled on httpcore's `NetworkStream`/`ConnectionInterface` seam: the sink's board, retries,
priorities and deletion rule are written against `Transport` alone, so FTP(S) is one module behind
it and another protocol (SFTP, object storage) is another, with the sink untouched.

The contract of `deliver`, whatever the protocol: the bytes go to a temporary name (or straight to
the final name when `atomic_rename` is off), arrive under the final name whole or not at all, and
are checked (by size at least) before `deliver` returns; a final name that holds another file is
replaced only when `may_replace` allows it. Failures are the kinds of `pipeline.transport.errors`.
`progress` is filled in as the delivery goes, also when it fails, so that the next attempt knows
whether the temporary name holds the start of this very version of the file (a resume).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the sink asks a transport to deliver, and how.

    `resume`: the temporary name may hold the start of this version (an earlier attempt's store of
    it began); `part_complete`: it holds all of it, so a rename is enough. `next_upload`, asked just
    before the rename, says whether another delivery follows on this connection (a transport may
    prepare it in the same round trip). `may_replace` is asked with the size of a file already at
    the final name: False ends the delivery with `TargetExists` before any byte is sent.
    `meanwhile`, when given, is called at most once, when the file's bytes (a long file's first block)
    are on their way and the transport waits for the server: the caller's own work (the previous delivery's
    bookkeeping) then overlaps that round trip instead of delaying the next flight. It never raises.
    `probe`: another remote file whose existence the transport may learn on the way, without a round
    trip of its own (FTP: a SIZE in the rename's flight); the answer is `Delivered.probed`.
    """

    local_path: str
    remote_path: str
    size: int
    resume: bool = False
    part_complete: bool = False
    atomic_rename: bool = True
    verify_size: bool = True
    next_upload: Callable[[], bool] | None = None
    may_replace: Callable[[int], bool] | None = None
    meanwhile: Callable[[], None] | None = None
    probe: str | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """What one successful delivery did: bytes sent now, where it resumed, the server's last word, the check.

    `verified`: True when the server's copy was checked, None when the server cannot tell.
    `sha256`: the file's SHA-256 (hex) from the bytes sent (None with `checksum = "none"`);
    `verified_by`: how the server's copy was checked, "hash" (the server hashed it and it matched),
    "size", or None (not checked). `probed`: whether `Delivery.probe` exists on the server (None: not
    asked, or no clear answer).
    """

    bytes_sent: int
    resumed_from: int
    reply: str
    verified: bool | None
    seconds: float
    sha256: str | None = None
    verified_by: str | None = None
    probed: bool | None = None


@dataclass(slots=True)
class DeliveryProgress:
    """How far one delivery got on the server, also when it failed: what the caller may trust next time.

    `stored`: a store into the temporary name was accepted, so from then on that name held this
    attempt's bytes of this version of the file (a prefix of it).
    """

    stored: bool = False
    #: the store ended with the whole file sent: the temporary name holds all of it
    complete: bool = False
    #: the rename onto the final name succeeded: it holds this file now
    renamed: bool = False


class Transport(Protocol):
    """One connection to a server, owned by one sink worker (`abort` is the one call from another thread)."""

    @property
    def connected(self) -> bool:
        """Whether the connection is open and in step."""
        ...

    def connect(self) -> str:
        """Open and log in; returns the server's greeting. Raises the failure kinds of `transport.errors`."""
        ...

    def deliver(self, delivery: Delivery, progress: DeliveryProgress) -> Delivered:
        """Deliver one file atomically (see the module docstring); raises on failure."""
        ...

    def target_in_folder(self, remote_path: str, name: str) -> str:
        """`remote_path/name` when `remote_path` is an existing folder on the server, else `remote_path`."""
        ...

    def keep_alive(self) -> None:
        """Keep an idle connection open (servers drop silent ones)."""
        ...

    def idle(self) -> None:
        """Release what was prepared for a next delivery that is not coming (the worker went idle)."""
        ...

    def remove_stale_temp(self, remote_path: str) -> None:
        """Remove the temporary name of `remote_path` if one is left (never raises for a missing one)."""
        ...

    def put_small(self, remote_path: str, data: bytes, *, new: bool = False, then_read: bool = False) -> None:
        """Store `data` (a small file: a manifest) at `remote_path` atomically: temporary name, then
        rename, then a size check; creates missing folders. Raises the failure kinds of `transport.errors`.

        `new`: the server said it had no such file (`Delivered.probed`); a transport that can tell without
        a round trip of its own (FTP: a SIZE in the store's flight) raises `TargetExists` if one appeared.
        `then_read`: the caller reads the file back next (`get_small`); a transport may read it on the way
        (FTP: in the rename's flight)."""
        ...

    def get_small(self, remote_path: str) -> bytes | None:
        """The content of a small remote file, None when there is none."""
        ...

    def list_files(self, remote_dir: str) -> dict[str, int]:
        """Every file under `remote_dir` (recursively) by path relative to it, with its size; {} when absent."""
        ...

    def remote_sha256(self, remote_path: str) -> str | None:
        """The server's SHA-256 of a remote file (hex), None when the server cannot hash or the file is absent."""
        ...

    @property
    def check(self) -> str:
        """The check this connection's server allows after a delivery: "hash", "size" or "none"."""
        ...

    def close(self, *, wait_reply: bool = True) -> None:
        """Close politely; never raises. `wait_reply` False (the run is over, nothing follows on this connection):
        a protocol whose goodbye has a reply need not wait for it."""
        ...

    def abort(self) -> None:
        """Cut the connection from another thread: the owner's call in progress fails at once."""
        ...


@runtime_checkable
class KnowsFirstFolder(Protocol):
    """A transport that can prepare its first delivery's folder while it logs in (FTP: in the login's flight)."""

    def first_folder(self, remote_dir: str) -> None:
        """The next `connect`'s first delivery goes into `remote_dir` (a hint: nothing is sent before `connect`)."""
        ...


@runtime_checkable
class OpensAhead(Protocol):
    """A transport that can open its connection before it may log in (FTP: the TCP connection and the welcome)."""

    def open_ahead(self, *, quiet: bool = True) -> bool:
        """Open the connection without sending anything of the account; True when it is open. `quiet`: never
        raises (`connect`, which logs in on it or opens anew when it went stale, says what went wrong); else
        raises the failure kinds of `transport.errors`, as `connect` does."""
        ...
