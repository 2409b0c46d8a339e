"""The `__main__` guard a spawned child needs from the orchestrator's main module, checked.

A process started with spawn (the uploader under a spawn start method, and the sink process
always) first runs the parent's main module again, as `__mp_main__`, before it unpickles its task.
An orchestrator script that builds and starts the uploader at module level, without
``if __name__ == "__main__":``, would therefore build a second uploader inside every such child.
The original API's constructors call `guard_main_module` first, so that child stops at once with a
message that says what to fix, and the process that started it sees it exit with code 1.
"""

from __future__ import annotations

import multiprocessing
import sys

MISSING_GUARD = (
    "{what} was called while a spawned process was starting and running the orchestrator's main module"
    ' {main} again: create and start the uploader only under `if __name__ == "__main__":` in that module'
    " (see docs/orchestrator.rst); refusing to start a second uploader"
)


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
