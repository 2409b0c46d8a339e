"""Logging for people (default) and for machines (`--log-format json`): one line per event.

Upload, retry, deletion and park lines carry `file`, `size`, `seconds` and `reply` as extra fields,
so the JSON form has them as keys and the text form shows them inline.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, TextIO

from pipeline.sink.log_errors import ERROR_TEXT, exception_text

#: Extra attributes that belong in a line when present.
FIELDS = ("file", "remote", "size", "seconds", "attempt", "outcome", "reply")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


#: The text form's line and its time.
TEXT_FORMAT, TEXT_TIME = "%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"

#: What ends a line for some reader (`str.splitlines`, journald, a terminal) or moves a terminal's cursor: the C0
#: controls, DEL, the C1 controls (NEL among them) and the Unicode line and paragraph separators.
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


#: The same but the newline: a traceback's own line ends.
_LINE_BREAKING_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
#: What JSON leaves raw in a string and a line reader or a terminal still acts on (the encoder escapes C0).
_JSON_LINE_BREAKING = re.compile("[\x7f-\x9f\u2028\u2029]")


def _escaped(found: re.Match[str]) -> str:
    return repr(found.group())[1:-1]


def _json_escaped(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


def one_line(text: str) -> str:
    """`text` with what would break its line shown escaped (`\\n`, `\\r`, `\\x1b`...): a file's name, or a
    server's reply, carries what the station or the server put in it, and a name holding a newline and a
    forged log line must not print as two lines."""
    if text.isprintable():  # (the common case, one C loop; a name with bytes that are not UTF-8 is not, either)
        return text
    return _LINE_BREAKING.sub(_escaped, text)


def indented(text: str) -> str:
    """A traceback or a stack, to follow a message: each of its lines indented, so that none can pass for a line of
    the log (an exception's text may hold a server's reply), and no other line end left in it."""
    return "\n".join("    " + line for line in _LINE_BREAKING_BUT_NEWLINE.sub(_escaped, text).split("\n"))


class OneLineFormatter(logging.Formatter):
    """A `logging.Formatter` whose message is always one line (`one_line`); a traceback or a stack follows it
    `indented`."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = one_line(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not (record.exc_info or record.exc_text or record.stack_info):  # (a line per file: one test, no search)
            return text
        end = text.find("\n")  # (the message has none: what follows it is the traceback or the stack)
        return text if end < 0 else text[: end + 1] + indented(text[end + 1 :])


class TextFormatter(OneLineFormatter):
    """`2026-11-29 05:22:43 INFO beemon.sink: delivered audio/x.wav (32044 B, 0.02 s) 226 ...`.

    The time has whole seconds: it is converted once per second (a busy run logs a line per file,
    hundreds a second, each paying a `localtime` and a `strftime` for the same text). A line without a
    traceback or stack is put together here, as `logging.Formatter.format` would with `TEXT_FORMAT`,
    in one step instead of its five calls.
    """

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_TIME)
        self._last_time: tuple[int, str] = (-1, "")  # (second, its text), replaced as one

    def format(self, record: logging.LogRecord) -> str:
        if record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        message = record.message = one_line(record.getMessage())
        created = record.created
        if self._last_time[0] == int(created) and created >= 0:  # (`formatTime`'s own test, without its call)
            asctime = record.asctime = self._last_time[1]
        else:
            asctime = record.asctime = self.formatTime(record, self.datefmt)
        return "%s %s %s: %s" % (asctime, record.levelname, record.name, message)  # noqa: UP031 (as TEXT_FORMAT)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        last = self._last_time
        cached = datefmt == self.datefmt and record.created >= 0  # (before 1970 `int` is not `localtime`'s second)
        if cached and last[0] == second:
            return last[1]
        text = super().formatTime(record, datefmt)
        if cached:
            self._last_time = (second, text)
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any of `FIELDS`.

    As in the text form, the time is converted once per second (its milliseconds aside), and the
    encoder is made once: `json.dumps` with options makes one per call.
    """

    def __init__(self) -> None:
        super().__init__()
        self._last_time: tuple[int, str, str] = (-1, "", "")  # (second, its text, its zone), replaced as one

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        last = self._last_time
        if last[0] != int(created) or created < 0:  # (before 1970 `int` is not the second `localtime` takes)
            moment = time.localtime(created)
            last = (int(created), time.strftime("%Y-%m-%dT%H:%M:%S", moment), time.strftime("%z", moment))
            self._last_time = last
        entry: dict[str, Any] = {
            "time": f"{last[1]}.{int(record.msecs):03d}{last[2]}",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        failure = getattr(record, ERROR_TEXT, None) or (exception_text(record.exc_info) if record.exc_info else None)
        if failure:  # (`ERROR_TEXT`: from the sink's process, whose record crossed the pipe without its exception)
            entry["error"] = failure
        text = _JSON.encode(entry)
        if text.isascii() and "\x7f" not in text:  # (the common line: two C scans, no regex)
            return text
        return _JSON_LINE_BREAKING.sub(_json_escaped, text)


#: `json.dumps(entry, default=str, ensure_ascii=False)`'s encoder (it keeps no state between lines).
_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


#: What `Filterer.filter` gives for a record no filter looked at: True (Python 3.11), or the record (3.12 on).
_PROBE = logging.makeLogRecord({})
_UNFILTERED_IS_RECORD = logging.Filterer().filter(_PROBE) is _PROBE


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """`logging.StreamHandler`, taking its lock, asking its formatter and flushing the stream itself for each line:
    a busy run writes a line per file, and `Handler.handle` (with no filter to ask), `Handler.format` and `flush`
    (which takes the lock `handle` holds already) are five Python calls more."""

    def handle(self, record: logging.LogRecord) -> Any:
        lock = self.lock
        if self.filters or lock is None:
            return super().handle(record)
        with lock:
            self.emit(record)
        return record if _UNFILTERED_IS_RECORD else True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            formatter = self.formatter  # (`Handler.format`'s choice, without its call)
            msg = formatter.format(record) if formatter else self.format(record)
            stream = self.stream
            stream.write(msg + self.terminator)
            if stream and hasattr(stream, "flush"):
                stream.flush()
        except RecursionError:  # as `StreamHandler.emit`
            raise
        except Exception:
            self.handleError(record)


#: logging's documented switches for what a record names of where it was made; no line of ours shows any of them.
RECORD_SWITCHES = ("logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks")


def spare_unshown_fields() -> None:
    """Turn `RECORD_SWITCHES` off: records no longer look up their thread, process and task names (the parent makes
    one per delivered file). Neither format shows them (the JSON form leaves logging's own fields out), so no line
    changes. Only in a process whose every line is formatted here (the command line's, `pipeline.cli.main.console`):
    an orchestrator's own formats may show them."""
    for switch in RECORD_SWITCHES:
        if hasattr(logging, switch):
            setattr(logging, switch, False)


def configure_logging(log_format: str = "text", level: int | str = logging.INFO, stream: TextIO | None = None) -> None:
    """Replace the root logger's handlers with one stream handler in the chosen format.

    When the stream is the journal (`pipeline.app.journal_format`), lines get a priority prefix and
    the text form drops its time (journald keeps its own).
    """
    from pipeline.app.journal_format import JournalFormatter, is_journal

    stream = stream or sys.stderr
    handler = LineHandler(stream)
    formatter: logging.Formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    if is_journal(stream):
        formatter = JournalFormatter(formatter if log_format == "json" else None)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
