"""What an early sink process (`pipeline.sink.prestart`) runs while its parent still reads the settings.

spawn runs this module as the child's `__mp_main__` right after its preparation; the child then
waits for its task (the `UploadHelper`), which finds the sink's modules below already imported.
Ctrl-C in a terminal reaches the whole process group: the parent decides, as for the running sink.
A parent that is gone before it sent the task (killed) ends the wait with `EOFError`: nothing to
do then, and nothing to print.
"""

from __future__ import annotations

import signal
import sys
from types import TracebackType

signal.signal(signal.SIGINT, signal.SIG_IGN)


def _silent_when_orphaned(kind: type[BaseException], error: BaseException, traceback: TracebackType | None) -> None:
    if not issubclass(kind, EOFError):
        sys.__excepthook__(kind, error, traceback)


sys.excepthook = _silent_when_orphaned

import pipeline.ftp.transport  # noqa: E402
import pipeline.sink.child  # noqa: E402
import pipeline.sink.manifest  # noqa: E402
import pipeline.sink.part_records  # noqa: E402
import pipeline.sink.process  # noqa: E402
import pipeline.sink.workers  # noqa: E402, F401
