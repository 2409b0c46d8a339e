"""Spawn the sink without multiprocessing's resource tracker.

`spawn`'s POSIX launcher (`multiprocessing.popen_spawn_posix.Popen._launch`) starts the resource
tracker, a third Python process of about 6.6 MB, for every child it spawns, whether or not anything
ever registers a named semaphore or shared-memory segment with it; it hands the child the
tracker's descriptor. The sink shares only pipes and an anonymous mapping (`pipeline.sink.pipes`,
`pipeline.sink.heartbeat`), so it has nothing to register. This launcher is spawn's, step for step
(CPython 3.11-3.13), without the tracker: a child that does make a named semaphore after all starts
a tracker of its own, as any process does.

Only on the versions it was checked against (`CHECKED_VERSIONS`; tests/sink/test_launch.py pins
CPython's launcher source): on any other, `launcher` gives spawn's own, tracker and all, rather
than a copy that may have drifted from what `spawn_main` expects.
"""

from __future__ import annotations

import io
import os
import sys
from multiprocessing import popen_spawn_posix, reduction, spawn, util
from multiprocessing.context import set_spawning_popen
from typing import Any

#: The CPython minor versions whose `popen_spawn_posix.Popen._launch` this copies (the same source in each).
CHECKED_VERSIONS = ((3, 11), (3, 12), (3, 13))


class TrackerlessPopen(popen_spawn_posix.Popen):
    """`popen_spawn_posix.Popen` whose `_launch` passes the child no resource tracker (none is started)."""

    def _launch(self, process_obj: Any) -> None:
        prep_data = spawn.get_preparation_data(process_obj._name)
        buffer = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buffer)
            reduction.dump(process_obj, buffer)
        finally:
            set_spawning_popen(None)
        self._start_child(buffer.getbuffer())

    def _start_child(self, first: Any) -> None:
        """Start the interpreter, passing it `self._fds`, and write `first` (its preparation, its task) to its pipe.

        The pipe's writing end stays open (`_to_child`) until the finalizer closes it: a child started
        early (`pipeline.sink.prestart`) reads its task from it later.
        """
        parent_r = child_w = child_r = parent_w = None
        try:
            parent_r, child_w = os.pipe()
            child_r, parent_w = os.pipe()
            command = spawn.get_command_line(pipe_handle=child_r)
            self._fds.extend([child_r, child_w])
            self.pid = util.spawnv_passfds(spawn.get_executable(), command, self._fds)
            self.sentinel = parent_r
            self._to_child = parent_w
            with open(parent_w, "wb", closefd=False) as pipe:
                pipe.write(first)
        finally:
            self.finalizer = util.Finalize(self, util.close_fds, [fd for fd in (parent_r, parent_w) if fd is not None])
            for fd in (child_r, child_w):
                if fd is not None:
                    os.close(fd)


def launcher() -> type[popen_spawn_posix.Popen]:
    """`TrackerlessPopen` on a checked CPython, spawn's own launcher on any other."""
    return TrackerlessPopen if sys.version_info[:2] in CHECKED_VERSIONS else popen_spawn_posix.Popen
