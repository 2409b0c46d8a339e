"""What the sink says about its results: one line per attempt, and one warning per episode, not per retry.

A delivery is one info line (with its removal, unless companions went too); a parked file is one
warning per distinct reply (then debug lines while the server keeps refusing the same way), with a
hint for the replies a person can act on; "no space left" is one warning per episode and one line
when files go through again. The settings that give up safety are named once at start
(`unsafe_settings`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from operators.model import UploadJob
from pipeline.outbox.deletion import final_beside
from pipeline.outbox.file_state import file_state
from pipeline.sink import delivered_line
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.policy import UploadPolicy

log = logging.getLogger("beemon.sink")


def unsafe_settings(policy: UploadPolicy) -> list[str]:
    """What the policy gives up of the checks that keep a cut upload from costing a file, one phrase each."""
    risks = []
    if not policy.verify_size:
        risks.append(
            "upload.verify_size = false: the server's copy is never checked, a local file is deleted on the"
            " server's 226 reply alone (a copy cut short on the server would be all that is left)"
            if policy.delete_after_upload
            else "upload.verify_size = false: the server's copy is never checked against the local size"
        )
    if not policy.atomic_rename:
        risks.append(
            "upload.atomic_rename = false: files are stored under their final names, so an interrupted upload"
            " leaves a cut file visible under its final name until it is sent again"
        )
    return risks


def out_of_space(reply: str) -> bool:
    """Whether a refusal says the server's disk (or the account's quota) is full: 452 and 552, or a 451 saying so."""
    text = reply.split(": ", 1)[-1] if reply[:3].isalpha() else reply
    code = text.strip()[:3]
    return code in ("452", "552") or (
        code == "451" and any(word in text.lower() for word in ("space", "quota", "full"))
    )


class ResultLog:
    """The log lines of the results, with what it takes to say each episode once (shared by the workers)."""

    def __init__(self, line_to_parent: Callable[[UploadResult], None] | None = None) -> None:
        """`line_to_parent` (the sink process's): sends a result whose line the parent writes
        (`pipeline.sink.delivered_line`); without it, every line is logged here."""
        self._lock = threading.Lock()
        self._parked_replies: dict[str, str] = {}
        self._out_of_space = False  # in an episode of "disk full" replies: warned once, until a file goes through
        self.line_to_parent = line_to_parent

    def result(self, result: UploadResult, delay: float, removed: list[str], kept: str = "") -> bool:
        """Log one attempt's result; `delay` is how long the file now waits (see `JobBoard.finish`).

        Returns True when the result went to `line_to_parent` with its line: it is not to be sent again.
        """
        path = result.local_path
        if result.outcome == Outcome.DELIVERED:
            return self._delivered(result, removed, kept)
        extra = delivered_line.extra_of(result)
        if result.outcome == Outcome.PARKED:
            self._parked(result, delay, extra)
        elif result.outcome == Outcome.RETRY and out_of_space(result.reply) and self._space_episode(True):
            log.warning(
                "the server has no space left: %s; files stay in the outbox and are retried with backoff",
                result.reply,
                extra=extra,
            )
        elif result.outcome == Outcome.RETRY:
            log.info("retrying %s in %.1f s (attempt %d): %s", path, delay, result.attempt, result.reply, extra=extra)
        elif result.outcome == Outcome.CHANGED:
            log.info("%s changed while it was uploaded: kept, uploading it again", path, extra=extra)
        else:
            log.info("%s is gone from the outbox: nothing to upload", path, extra=extra)
        return False

    def _delivered(self, result: UploadResult, removed: list[str], kept: str) -> bool:
        path = result.local_path
        # (each asked before the lock: most deliveries have neither to do, and a result's path is no other's now)
        if self._parked_replies:
            with self._lock:
                self._parked_replies.pop(path, None)
        if self._out_of_space and self._space_episode(False):
            log.info("the server takes files again (it had no space left)")
        if removed == [path]:  # the usual case, one line
            if self.line_to_parent is not None and log.isEnabledFor(logging.INFO):
                self.line_to_parent(result)
                return True
            delivered_line.write(result)
            return False
        extra = delivered_line.extra_of(result)
        log.info(
            "delivered %s -> %s (%d B, %.2f s)", path, result.remote_path, result.bytes, result.seconds, extra=extra
        )
        if removed:
            log.info("removed %s from the outbox (verified on the server)", ", ".join(removed), extra=extra)
        if kept:
            log.info("kept %s in the outbox: %s", path, kept, extra=extra)
        return False

    def _parked(self, result: UploadResult, delay: float, extra: dict[str, object]) -> None:
        """One warning per file and reply, saying what a person can do; debug lines while it stays the same."""
        path, reply = result.local_path, result.reply
        with self._lock:
            repeated = self._parked_replies.get(path) == reply
            self._parked_replies[path] = reply
        if repeated:
            log.debug("still refused: %s: %s", path, reply, extra=extra)
        elif reply.startswith("cannot read "):
            log.warning(
                "%s: parked, it stays in the outbox and is tried again when it changes (and every %.0f s)",
                reply,
                delay,
                extra=extra,
            )
        elif reply.startswith("refusing to overwrite"):
            log.warning(
                "%s: parked, the local file stays in the outbox (two outbox files map to this remote name,"
                " or the server's file came from elsewhere); retrying every %.0f s",
                reply,
                delay,
                extra=extra,
            )
        else:
            hint = (
                "; if this server never allows renames, set upload.atomic_rename = false"
                if "rename refused" in reply
                else ""
            )
            log.warning(
                "parked %s -> %s: the server answered %r; retrying every %.0f s%s",
                path,
                result.remote_path,
                reply,
                delay,
                hint,
                extra=extra,
            )

    def _space_episode(self, full: bool) -> bool:
        """Record whether the server is out of space now; True when that starts or ends an episode."""
        with self._lock:
            changed, self._out_of_space = self._out_of_space != full, full
            return changed


def day_file_delivered(job: UploadJob) -> None:
    """Say why a bare `.csv` went up as its day's file: its `.final` is shorter, or never came."""
    final = final_beside(job.local_path)
    final_size = file_state(final) if final is not None else None
    if final is not None and final_size is not None:
        log.warning(
            "delivered %s (%d B) as its day's file %s: %s is shorter (%d B)",
            job.local_path,
            job.size,
            job.remote_path,
            final.rsplit("/", 1)[-1],
            final_size.size,
        )
    else:
        log.warning(
            "delivered %s (%d B) as its day's file %s without its .final: the day is over and the file"
            " was left quiet; a .final that comes later replaces it on the server",
            job.local_path,
            job.size,
            job.remote_path,
        )
