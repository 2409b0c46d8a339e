"""The `__main__` guard a spawned child needs from the orchestrator's main module, checked.

A process started with spawn (the uploader under a spawn start method, and the sink process
always) first runs the parent's main module again, as `__mp_main__`, before it unpickles its task.
An orchestrator script that builds and starts the uploader at module level, without
``if __name__ == "__main__":``, would therefore build a second uploader inside every such child.
The original API's constructors call `guard_main_module` first, so that child stops at once with a
message that says what to fix, and the process that started it sees it exit with code 1.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import types
from collections.abc import Iterator

MISSING_GUARD = (
    "{what} was called while a spawned process was starting and running the orchestrator's main module"
    ' {main} again: create and start the uploader only under `if __name__ == "__main__":` in that module'
    " (see docs/orchestrator.rst); refusing to start a second uploader"
)


#: Set by a main module that has nothing a spawned child needs (the command line): see `main_module_left_out`.
_CHILDREN_SKIP_MAIN = False


def children_need_no_main_module() -> None:
    """Say that this process's main module holds nothing a spawned child needs (the `beemon-uploader` script).

    The sink process then starts without running it again: it imports only what it unpickles
    (the sink's own modules), not the command line with its settings library, watcher and stream.
    """
    global _CHILDREN_SKIP_MAIN
    _CHILDREN_SKIP_MAIN = True


@contextlib.contextmanager
def main_module_left_out() -> Iterator[None]:
    """While starting a spawned child: its preparation names no main module to run, when the main said so.

    spawn reads `sys.modules["__main__"]` to tell the child what to run first; an empty stand-in
    for the time of the start makes it run nothing. An orchestrator's main module is always run
    (its classes may be in what the child unpickles), as multiprocessing does.
    """
    if not _CHILDREN_SKIP_MAIN:
        yield
        return
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class MissingMainGuard(RuntimeError):
    """The orchestrator's main module starts the uploader at import time (no `__main__` guard)."""


def bootstrapping() -> bool:
    """Whether this process is a spawned child still preparing (running the parent's main module)."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def guard_main_module(what: str) -> None:
    """Raise `MissingMainGuard` when called while a spawned child runs the parent's main module."""
    if bootstrapping():
        module = sys.modules.get("__mp_main__") or sys.modules.get("__main__")
        raise MissingMainGuard(MISSING_GUARD.format(what=what, main=getattr(module, "__file__", "") or ""))
