"""What the uploader has lately done, beyond the counts: last delivery, last error, parked files and why,
failures by reason, sink restarts. Read by the status file and the metrics endpoint.

Fed with every `UploadResult` (the pipeline's `on_result`) and by the composition root when it
rebuilds the sink; it outlives any one pipeline, so a restart or a reload keeps the history.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipeline.sink.model import Outcome

_REPLY_CODE = re.compile(r"^\s*(?:[A-Z]{3,4}:\s*)?([1-6]\d\d)\b")  # "550 ..." or "STOR: 550 ..."


def failure_reason(outcome: Outcome, reply: str) -> str:
    """A short, bounded label for why an attempt failed: ``ftp_550``, ``timeout``, ``connection_refused``..."""
    if outcome == Outcome.CHANGED:
        return "local_changed"
    if match := _REPLY_CODE.match(reply):
        return f"ftp_{match.group(1)}"
    text = reply.lower()
    for words, reason in (
        (("timed out", "timeout"), "timeout"),
        (("refused",), "connection_refused"),
        (("ssl", "tls", "certificate"), "tls"),
        (("reset", "broken pipe", "eof", "closed", "unreachable", "name or service"), "connection"),
        (("no such file", "permission denied", "cannot read"), "local_file"),
    ):
        if any(word in text for word in words):
            return reason
    return "other"


@dataclass(frozen=True, slots=True)
class Event:
    """One delivery or failure worth showing: which file, where to, the reply, when (epoch seconds)."""

    local_path: str
    remote_path: str
    reply: str
    at: float
    outcome: Outcome = Outcome.DELIVERED

    def as_dict(self) -> dict[str, Any]:
        return {
            "file": self.local_path,
            "remote": self.remote_path,
            "reply": self.reply,
            "at": self.at,
            "outcome": self.outcome,
        }


class Activity:
    """Thread-safe; `record` takes each result, the rest read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started_at = time.time()
        self._delivered: tuple[Any, float] | None = None  # the last delivery's result and time (see `record`)
        self.last_error: Event | None = None
        self._parked: dict[str, str] = {}
        self._failures: Counter[str] = Counter()
        self.sink_restarts = 0
        self.reloads = 0

    @property
    def last_delivery(self) -> Event | None:
        """The last delivery (file, remote path, reply, when), or None before the first."""
        with self._lock:
            delivered = self._delivered
        if delivered is None:
            return None
        result, at = delivered
        return Event(result.local_path, result.remote_path, result.reply, at, result.outcome)

    def record(self, result: Any) -> None:
        """One `UploadResult`: a delivery, a failure (counted by reason), a park or its end.

        A delivery keeps the result itself (results are immutable) until `last_delivery` is read:
        every file is delivered, the status file reads one now and then.
        """
        at = time.time()
        outcome = result.outcome
        if outcome == Outcome.DELIVERED:
            with self._lock:
                self._delivered = (result, at)
                self._parked.pop(result.local_path, None)
            return
        event = Event(result.local_path, result.remote_path, result.reply, at, outcome)
        with self._lock:
            if outcome.failed:
                self.last_error = event
                self._failures[failure_reason(outcome, result.reply)] += 1
            if outcome == Outcome.PARKED:
                self._parked[result.local_path] = result.reply
            else:
                self._parked.pop(result.local_path, None)

    def sink_restarted(self) -> None:
        with self._lock:
            self.sink_restarts += 1

    def reloaded(self) -> None:
        with self._lock:
            self.reloads += 1

    def parked(self) -> dict[str, str]:
        """Parked files and the reply that parked each."""
        with self._lock:
            return dict(self._parked)

    def failures(self) -> dict[str, int]:
        with self._lock:
            return dict(self._failures)
