"""The early sink process (`pipeline.sink.prestart`) takes only a task whose pipes it was started with."""

from __future__ import annotations

import os

from pipeline.sink.channels import SPAWN
from pipeline.sink.prestart import EarlySink
from tests.helpers import wait_until


class HoldsAPipe:
    """A task holding a pipe made after the child started (its descriptor cannot reach the child any more)."""

    def __init__(self, end: object) -> None:
        self.end = end


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_task_needing_a_pipe_the_early_child_lacks_is_refused_and_the_child_stopped():
    early = EarlySink()
    pid = early.pid
    assert pid is not None and alive(pid)
    reader, writer = SPAWN.Pipe(duplex=False)
    try:
        assert early.hand_over(HoldsAPipe(reader)) is None  # the caller starts a process as usual instead
        assert early.pid is None
        wait_until(lambda: not alive(pid), timeout=10)  # reaped: not even a zombie is left
    finally:
        early.close()
        reader.close()
        writer.close()


def test_closing_an_unused_early_sink_stops_its_child_and_closes_its_pipes():
    early = EarlySink()
    pid = early.pid
    assert pid is not None
    early.close()
    assert not alive(pid)
    assert early.channels.primary_reader.closed and early.channels.control_writer.closed
    early.close()  # twice: nothing happens
