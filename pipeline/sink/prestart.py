"""Start the sink's interpreter before the settings are read, so that its start-up overlaps the parent's.

Without it, `run --once` does two start-ups one after the other: the parent reads and validates
its settings, then spawns the sink, whose fresh interpreter imports ftplib, ssl, hashlib and the
sink's modules before its first login (some 0.15 s on a two-core machine). `EarlySink` starts that
interpreter first, the way spawn does (`pipeline.sink.launch`), in two steps:

- now: the interpreter, with the ends of the pipes it will use (`Channels`, made now: descriptors
  can only be passed when a process starts), and spawn's preparation, which names
  `pipeline.sink.preload` as the module to run first: the child imports the sink's modules there,
  then waits for its task;
- once the settings are known: the task, the `UploadHelper` built from them
  (`UploadHelper(..., early=...)` takes the channels, its start hands the task over).

A run that never gets that far (a bad setting, the outbox in use) calls `close`: the child gets a
task that does nothing and SIGTERM, and is waited for; nothing is left running. Only for a main
module that spawned children need not run (the command line: `children_need_no_main_module`), and
only with the trackerless launcher (a checked CPython); elsewhere `start_early_sink` returns None
and the sink starts as before.
"""

from __future__ import annotations

import io
import logging
import sys
from multiprocessing import reduction, spawn
from multiprocessing.context import set_spawning_popen
from typing import Any

from pipeline.sink.channels import Channels
from pipeline.sink.launch import CHECKED_VERSIONS, TrackerlessPopen
from pipeline.sink.main_guard import main_module_left_out

log = logging.getLogger("beemon.sink")

#: The module the early child runs while it waits for its task (spawn's "main module" of the child).
PRELOAD = "pipeline.sink.preload"
#: The sink process's name (`UploadHelper`'s default), known to the child from its preparation.
SINK_NAME = "beemon-sink"
#: How long `close` waits for an unused child to exit before it kills it.
EXIT_SECONDS = 5.0


class NoTask:
    """The task of an early child that is not needed: it exits at once with code 0."""

    def _bootstrap(self, parent_sentinel: Any = None) -> int:
        return 0


class EarlyPopen(TrackerlessPopen):
    """spawn's launch in two steps: `__init__` starts the interpreter, `hand_over` sends its task."""

    def __init__(self, channels: Channels) -> None:
        super().__init__(channels)  # `_launch(channels)`: the interpreter and its preparation

    def _launch(self, channels: Any) -> None:
        with main_module_left_out():
            prep_data = spawn.get_preparation_data(SINK_NAME)
        prep_data["init_main_from_name"] = PRELOAD
        buffer = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buffer)
            reduction.dump(channels, io.BytesIO())  # only to learn the descriptors the task will hold
        finally:
            set_spawning_popen(None)
        self.passed = frozenset(self._fds)
        self._start_child(buffer.getbuffer())

    def hand_over(self, task: Any) -> bool:
        """Send `task` to the child; False (nothing sent) when it needs a descriptor the child did not get
        at its start, or the child is gone."""
        buffer = io.BytesIO()
        before = len(self._fds)
        set_spawning_popen(self)
        try:
            reduction.dump(task, buffer)
        finally:
            set_spawning_popen(None)
        if not set(self._fds[before:]) <= self.passed or self.poll() is not None:
            return False
        try:
            with open(self._to_child, "wb", closefd=False) as pipe:
                pipe.write(buffer.getbuffer())
        except OSError:  # the child is gone
            return False
        return True


class EarlySink:
    """The sink's interpreter started ahead (see the module docstring): `take_channels`, `hand_over`, `close`."""

    def __init__(self) -> None:
        self.channels = Channels()
        self._channels_taken = False
        self._popen: EarlyPopen | None = EarlyPopen(self.channels)

    @property
    def pid(self) -> int | None:
        """The child's process id while it waits for its task (None once handed over or closed)."""
        return self._popen.pid if self._popen is not None else None

    def take_channels(self) -> Channels:
        """The pipes and heartbeat the child was started with; from now on the caller owns them."""
        self._channels_taken = True
        return self.channels

    def hand_over(self, task: Any) -> EarlyPopen | None:
        """The started child, now running `task` (a process object holding only the taken channels); None when
        it cannot take it (then it is stopped, and the caller starts a process as usual)."""
        popen, self._popen = self._popen, None
        if popen is None:
            return None
        if popen.hand_over(task):
            return popen
        log.debug("the early sink process could not take its task: starting another")
        _stop(popen)
        return None

    def close(self) -> None:
        """Stop the child if it never got its task, and release the channels if nobody took them. Idempotent."""
        popen, self._popen = self._popen, None
        if popen is not None:
            _stop(popen)
        if not self._channels_taken:
            self._channels_taken = True
            self.channels.release()


def _stop(popen: EarlyPopen) -> None:
    """End an unused child: a task that does nothing (for a child that ignores SIGTERM), SIGTERM, then wait."""
    popen.hand_over(NoTask())
    popen.terminate()
    if popen.wait(EXIT_SECONDS) is None:
        popen.kill()
        popen.wait(EXIT_SECONDS)
    popen.close()


def start_early_sink() -> EarlySink | None:
    """An `EarlySink`, or None where it cannot be used (see the module docstring): then the sink starts as usual."""
    if sys.version_info[:2] not in CHECKED_VERSIONS:
        return None
    with main_module_left_out():
        main = sys.modules["__main__"]
        runs_main = getattr(main, "__spec__", None) is not None or getattr(main, "__file__", None) is not None
    if runs_main:
        return None
    return EarlySink()
