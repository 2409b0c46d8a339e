"""A `Ticket`: one local path's life on the board, and the rules for two jobs of one path.

A newer job replaces an older one for the same path, at the more urgent of the two priorities (a
live file never drops to backfill); a rescan that finds the same version again changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from operators.model import Priority, UploadJob

if TYPE_CHECKING:
    from pipeline.transport.base import DeliveryProgress


@dataclass(eq=False, slots=True)
class Ticket:
    """One path's life on the board: its current job and its history of attempts."""

    job: UploadJob
    attempts: int = 0
    failures: int = 0
    parked: bool = False
    due: float = 0.0
    #: what the attempt in flight did on the server, filled in by the session as it goes
    progress: DeliveryProgress | None = None
    #: the remote path this ticket holds reserved while in flight
    reserved: str = ""
    #: False once a lean run (`pipeline.sink.burst_loop`) handed it back: the full delivery path takes it from then on
    lean: bool = True

    @property
    def path(self) -> str:
        return self.job.local_path


def queue_index(priority: int) -> int:
    """The original's rule: priority 0 is the primary queue, anything else the secondary."""
    return 0 if priority == Priority.LIVE else 1


def same_version(a: UploadJob, b: UploadJob) -> bool:
    return (a.remote_path, a.size, a.mtime_ns) == (b.remote_path, b.size, b.mtime_ns)


def merge(old: UploadJob, new: UploadJob) -> UploadJob:
    """The newer job, at the more urgent of the two priorities (a live file never drops to backfill)."""
    priority = Priority(min(queue_index(old.priority), queue_index(new.priority)))
    return new if queue_index(new.priority) == priority else replace(new, priority=priority)
