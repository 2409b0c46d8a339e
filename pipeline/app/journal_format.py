"""Log lines for journald: when stderr is the journal, each line starts with its syslog priority.

systemd connects a service's stderr to the journal and says so in ``JOURNAL_STREAM``
(``<device>:<inode>`` of that stream). journald reads a leading ``<N>`` as the line's priority
(so ``journalctl -p warning`` finds warnings) and stamps every line itself, so the line carries
no time of its own.
"""

from __future__ import annotations

import logging
import os
from typing import TextIO

from pipeline.app.logs import OneLineFormatter

#: syslog priorities (RFC 5424) by logging level: 7 debug, 6 info, 4 warning, 3 err, 2 crit.
PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
DEBUG_PRIORITY = 7


def priority(levelno: int) -> int:
    """The syslog priority of a logging level (a custom level takes that of the level below it)."""
    for level, value in PRIORITIES:
        if levelno >= level:
            return value
    return DEBUG_PRIORITY


def is_journal(stream: TextIO) -> bool:
    """Whether `stream` is the journal stream systemd named in ``JOURNAL_STREAM`` (not merely inherited)."""
    named = os.environ.get("JOURNAL_STREAM", "")
    device, _, inode = named.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return bool(named) and (st.st_dev, st.st_ino) == (int(device), int(inode))
    except (AttributeError, OSError, ValueError):
        return False


class JournalFormatter(logging.Formatter):
    """``<4>beemon.sink: 550 refused ...``: priority, logger, message; journald adds the time.

    `inner` formats the rest of the line (the text form without its time, or the JSON form).
    """

    def __init__(self, inner: logging.Formatter | None = None) -> None:
        super().__init__()
        self._inner = inner or OneLineFormatter("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = self._inner.format(record)
        prefix = f"<{priority(record.levelno)}>"
        # A traceback spans lines; journald reads each line on its own, so each carries the priority. (Split at
        # newlines only: journald's line end; `splitlines` would also cut a JSON line at a U+2028 in a name.)
        return "\n".join(prefix + line for line in text.split("\n"))
