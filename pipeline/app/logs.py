"""Logging for people (default) and for machines (`--log-format json`): one line per event.

Upload, retry, deletion and park lines carry `file`, `size`, `seconds` and `reply` as extra fields,
so the JSON form has them as keys and the text form shows them inline.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

#: Extra attributes that belong in a line when present.
FIELDS = ("file", "remote", "size", "seconds", "attempt", "outcome", "reply")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class TextFormatter(logging.Formatter):
    """`2026-11-29 05:22:43 INFO beemon.sink: delivered audio/x.wav (32044 B, 0.02 s) 226 ...`.

    The time has whole seconds: it is converted once per second (a busy run logs a line per file,
    hundreds a second, each paying a `localtime` and a `strftime` for the same text).
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        self._last_time: tuple[int, str] = (-1, "")  # (second, its text), replaced as one

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        last = self._last_time
        if last[0] == second and datefmt == self.datefmt:
            return last[1]
        text = super().formatTime(record, datefmt)
        if datefmt == self.datefmt:
            self._last_time = (second, text)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any of `FIELDS`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
            + f".{int(record.msecs):03d}"
            + time.strftime("%z", time.localtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(log_format: str = "text", level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one stream handler in the chosen format.

    When the stream is the journal (`pipeline.app.journal_format`), lines get a priority prefix and
    the text form drops its time (journald keeps its own).
    """
    from pipeline.app.journal_format import JournalFormatter, is_journal

    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    if is_journal(stream):
        formatter = JournalFormatter(formatter if log_format == "json" else None)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
