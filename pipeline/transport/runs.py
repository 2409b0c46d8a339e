"""Runs of small files driven by one thread: what a transport offers the sink's loop for them (issue 17).

A transport that can send a run of small files without blocking (FTP: `pipeline.ftp.burst`) offers
`lean_ready` and `lean_flow` besides `Transport`; the sink's loop (`pipeline.sink.burst_loop`) drives
the flows of every session lent to it from one thread. What crosses this seam: the file to send
(`BurstFile`), how a run ended early (`BurstStopped`), and the flow's calls (`BurstFlow`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

from pipeline.transport.base import Delivered, DeliveryProgress

if TYPE_CHECKING:
    from pipeline.transport.bandwidth import LiveFirst


class BurstFile(NamedTuple):
    """One file of a run: where it is, where it goes (relative to the remote root, or absolute), its size now."""

    local_path: str
    remote_path: str
    size: int
    #: the overwrite guard's rule for an existing final name of that size (`Delivery.may_replace`)
    may_replace: Callable[[int], bool]
    progress: DeliveryProgress
    #: what the caller knows it by (handed back in `BurstStopped` and with the report)
    token: Any = None
    #: a live file's gate: while it is sent, backlog transfers pause (`pipeline.transport.bandwidth.LiveFirst`)
    live: LiveFirst | None = None


class BurstStopped(Exception):
    """The run ended at `file` (None: before any) before its delivery was verified.

    `untake`: nothing of it is to be trusted or reported (the full delivery path does it from the start);
    else `error` is the failure to report for this attempt, as the full path raises it.
    """

    def __init__(self, file: BurstFile | None, error: BaseException, *, untake: bool) -> None:
        super().__init__(file.local_path if file is not None else None, error)
        self.file = file
        self.error = error
        self.untake = untake


class BurstFlow(Protocol):
    """One session's run, driven by a loop: `start` once, then `readable` / `writable` when the selector says
    so and `expired` once `deadline` passes; `done` when it ended as planned. Each call may raise
    `BurstStopped`; `close_data` releases what the flow holds when the run is given up."""

    control: socket.socket
    data: socket.socket | None
    deadline: float
    done: bool
    file: BurstFile

    def start(self) -> None: ...

    def readable(self) -> None: ...

    def writable(self) -> None: ...

    def expired(self) -> None: ...

    def close_data(self) -> None: ...


@runtime_checkable
class LeanTransport(Protocol):
    """A `Transport` that also sends runs of small files for a loop to drive."""

    def lean_ready(self, folder: str, size: int) -> bool:
        """Whether a file of `size` bytes into `folder` may go the lean way over this session now."""
        ...

    def lean_flow(
        self,
        first: BurstFile,
        following: Callable[[], tuple[bool, BurstFile | None]],
        verified: Callable[[BurstFile, Delivered], None],
    ) -> BurstFlow:
        """A run beginning with `first`; `following()` gives the next file (and whether a data port is wanted
        for an upload that follows), `verified` gets each file's report once its copy is checked."""
        ...
