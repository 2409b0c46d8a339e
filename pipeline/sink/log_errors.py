"""The exception a log record carries, as one text: the JSON form's `error` (`pipeline.app.logs`).

Made where the exception is: a record of the sink process crosses the reports pipe without its exception
(a traceback cannot be pickled), with this text beside its formatted traceback (`LogsToParent`).
"""

from __future__ import annotations

import traceback
from typing import Any

#: The record attribute that carries it across the pipe (a leading underscore: no field of the JSON form).
ERROR_TEXT = "_error"


def exception_text(exc_info: Any) -> str:
    """The exception's type and whole text (`traceback.format_exception_only`), lines and all: a server's
    multi-line reply, a group's count. Parsing a formatted traceback for it lost text whose lines begin
    with a space, as a multi-line FTP reply's do."""
    return "".join(traceback.format_exception_only(exc_info[0], exc_info[1])).rstrip("\n")
