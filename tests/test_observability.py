"""Log formats and the statistics figures: exact lines and fields."""

from __future__ import annotations

import io
import json
import logging
import os
import time

import pytest

from operators.model import Priority
from pipeline.app.logs import configure_logging
from pipeline.app.stats import UploadStats, format_bytes
from pipeline.sink.model import Outcome
from tests.helpers import job


@pytest.fixture(autouse=True)
def restore_root_logging():
    """configure_logging replaces the root handlers: put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_log_lines_carry_the_upload_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", stream=stream)
    logging.getLogger("beemon.sink").info(
        "delivered %s", "a.wav", extra={"file": "a.wav", "size": 12, "seconds": 0.5, "reply": "226 ok"}
    )
    entry = json.loads(stream.getvalue())
    assert {k: entry[k] for k in ("level", "logger", "message", "file", "size", "seconds", "reply")} == {
        "level": "INFO",
        "logger": "beemon.sink",
        "message": "delivered a.wav",
        "file": "a.wav",
        "size": 12,
        "seconds": 0.5,
        "reply": "226 ok",
    }


def test_text_log_line_is_readable() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    logging.getLogger("beemon.cli").warning("plain FTP to %s", "ftp.example.org")
    assert stream.getvalue().endswith(" WARNING beemon.cli: plain FTP to ftp.example.org\n")


def test_text_log_lines_carry_the_second_each_was_made_in() -> None:
    stream = io.StringIO()
    configure_logging("text", stream=stream)
    logger = logging.getLogger("beemon.sink")
    moments = [1_764_633_600.2, 1_764_633_600.9, 1_764_633_601.0, 1_764_633_600.5, 1_764_720_000.0]
    for moment in moments:
        logger.handle(
            logging.makeLogRecord(
                {
                    "name": "beemon.sink",
                    "msg": "delivered",
                    "levelno": logging.INFO,
                    "levelname": "INFO",
                    "created": moment,
                }
            )
        )
    stamps = [line[:19] for line in stream.getvalue().splitlines()]
    assert stamps == [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment)) for moment in moments]


def test_stats_snapshot_counts_queues_flight_and_deliveries() -> None:
    stats = UploadStats()
    now_ns = time.time_ns()
    stats.submitted(job("/a", Priority.LIVE, mtime_ns=now_ns))
    stats.submitted(job("/b", Priority.BACKFILL, mtime_ns=now_ns - 3_600 * 10**9))
    stats.submitted(job("/c", Priority.BACKFILL, mtime_ns=now_ns))
    stats.finished("/a", Outcome.DELIVERED, 1_500)
    stats.finished("/c", Outcome.RETRY, 0)
    snap = stats.snapshot()
    assert (snap.queued_primary, snap.queued_secondary, snap.in_flight) == (0, 2, 0)
    assert (snap.delivered, snap.failed, snap.bytes_delivered) == (1, 1, 1_500)
    assert 3_599 <= snap.oldest_waiting_seconds <= 3_700
    assert snap.rate_bytes_per_second == 1_500.0
    assert snap.line().startswith("queued 0 live + 2 backfill, in flight 0, delivered 1, failed 1, 1.5 KB, 1.5 KB/s")
    stats.finished("/b", Outcome.GONE, 0)
    stats.finished("/c", Outcome.DELIVERED, 100)
    assert (stats.snapshot().queued_primary, stats.snapshot().queued_secondary) == (0, 0)


def test_format_bytes() -> None:
    assert [format_bytes(n) for n in (0, 999, 1_000, 2_500_000, 3e9)] == ["0 B", "999 B", "1.0 KB", "2.5 MB", "3.0 GB"]


def _records() -> list[logging.LogRecord]:
    """Records of every shape the formats meet: arguments, none, a message that is no string, extra fields, a level
    name of the user's, an error with its traceback, a stack, a time before 1970 and one in a second of its own."""
    try:
        raise ValueError("the disk is gone")
    except ValueError:
        import sys

        error = sys.exc_info()
    made = [
        logging.makeLogRecord({"name": "beemon.sink", "msg": "delivered %s (%d B)", "args": ("a.wav", 12)}),
        logging.makeLogRecord({"name": "beemon.cli", "msg": "plain", "levelno": 30, "levelname": "WARNING"}),
        logging.makeLogRecord({"name": "beemon", "msg": 42, "created": 1_764_633_601.999}),
        logging.makeLogRecord({"msg": "x", "file": "a.wav", "size": 12, "reply": "226 ok", "_private": 1}),
        logging.makeLogRecord({"msg": "note", "levelname": ("NOTE", 1)}),
        logging.makeLogRecord({"msg": "failed %s", "args": ("a",), "exc_info": error}),
        logging.makeLogRecord({"msg": "here", "stack_info": "Stack (most recent call last):\n  here"}),
        logging.makeLogRecord({"msg": "old", "created": -1.25, "msecs": 750.0}),
        logging.makeLogRecord({"msg": "old", "created": -1.0, "msecs": 0.0}),  # (`int` gives both -1)
        logging.makeLogRecord({"msg": "ünïcode ✓", "created": 1_764_633_600.2}),
    ]
    made.append(logging.makeLogRecord({**made[0].__dict__, "created": made[0].created + 1}))
    return made


def _json_line(record: logging.LogRecord) -> str:
    """`JsonFormatter`'s line as it was first written: both times converted and a `json.dumps` for every line."""
    from pipeline.app.logs import _STANDARD

    entry = {
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
        entry["error"] = logging.Formatter().formatException(record.exc_info).splitlines()[-1]
    return json.dumps(entry, default=str, ensure_ascii=False)


def test_the_text_form_is_logging_s_formatter_with_its_format() -> None:
    """`TextFormatter` puts a plain line together itself: the same line, and the same `message` and `asctime` left
    on the record, as `logging.Formatter` with the same format and time (every record twice: its second is kept);
    a traceback or a stack below it, each of its lines indented (none can pass for a line of the log)."""
    from pipeline.app.logs import TEXT_FORMAT, TEXT_TIME, TextFormatter

    ours, stock = TextFormatter(), logging.Formatter(TEXT_FORMAT, TEXT_TIME)
    for record in _records() * 2:
        expected = logging.makeLogRecord(dict(record.__dict__))
        line, below, rest = stock.format(expected).partition("\n")
        assert ours.format(record) == line + below + "\n".join("    " + more for more in rest.split("\n") if below)
        assert (record.message, record.asctime) == (expected.message, expected.asctime)


def test_the_json_form_is_the_one_first_written() -> None:
    from pipeline.app.logs import JsonFormatter

    ours = JsonFormatter()
    for record in _records() * 2:
        assert ours.format(record) == _json_line(record)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_handler_writes_what_logging_s_stream_handler_writes(log_format: str) -> None:
    from pipeline.app.logs import LineHandler

    class NoFlush:  # a stream without `flush` (logging's handler does not call one)
        def __init__(self) -> None:
            self.text = ""

        def write(self, text: str) -> None:
            self.text += text

    for ours, stock in ((io.StringIO(), io.StringIO()), (NoFlush(), NoFlush())):
        configure_logging(log_format, stream=ours)  # type: ignore[arg-type]
        handler = logging.getLogger().handlers[0]
        assert type(handler) is LineHandler
        reference = logging.StreamHandler(stock)  # type: ignore[arg-type]
        reference.setFormatter(type(handler.formatter)())
        for record in _records():
            ours_gave = handler.handle(mine := logging.makeLogRecord(dict(record.__dict__)))
            stock_gave = reference.handle(theirs := logging.makeLogRecord(dict(record.__dict__)))
            assert ours_gave == (mine if stock_gave is theirs else stock_gave)
        records = _records()
        for each in (handler, reference):  # with a filter of the user's: the records it refuses are not written
            each.addFilter(lambda record: record.name != "beemon.cli")
            for record in records:
                each.handle(logging.makeLogRecord(dict(record.__dict__)))
        written = ours.getvalue() if isinstance(ours, io.StringIO) else ours.text
        assert written == (stock.getvalue() if isinstance(stock, io.StringIO) else stock.text)
        assert written.count("\n") >= len(_records())


@pytest.mark.parametrize("journal", [False, True])
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_command_line_s_records_skip_the_fields_no_line_shows_and_every_line_stays_the_same(
    monkeypatch, tmp_path, log_format: str, journal: bool
) -> None:
    """`console` turns logging's switches off (`spare_unshown_fields`): records made with them off (a delivered
    line as the parent makes it, a warning, an error with its traceback) give the very lines they gave with them on,
    in either format, in the journal or not."""
    from pipeline.app import logs
    from pipeline.sink import delivered_line
    from pipeline.sink.model import UploadResult

    for switch in logs.RECORD_SWITCHES:  # put back as they were, whatever the test does
        if hasattr(logging, switch):
            monkeypatch.setattr(logging, switch, getattr(logging, switch))
    log_file = tmp_path / "log"

    def lines() -> list[str]:
        with open(log_file, "w+", encoding="utf-8") as stream:
            if journal:
                st = os.fstat(stream.fileno())
                monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
            configure_logging(log_format, stream=stream)
            result = UploadResult("/o/a.wav", "/r/a.wav", 4096, 0.01, 1, Outcome.DELIVERED, "226 ok")
            logging.getLogger("beemon.sink").handle(delivered_line.record(result, 1e9))
            logging.getLogger("beemon.cli").warning("plain FTP to %s", "ftp.example.org", extra={"file": "b.wav"})
            try:
                raise OSError("refused")
            except OSError:
                logging.getLogger("beemon.sink").exception("could not send %s", "c.wav")
        text = log_file.read_text(encoding="utf-8")
        return [line.split(" ", 2)[-1] if log_format == "text" and not journal else line for line in text.splitlines()]

    before = lines()
    logs.spare_unshown_fields()
    assert all(getattr(logging, switch) is False for switch in logs.RECORD_SWITCHES if hasattr(logging, switch))
    after = lines()
    if log_format == "json":  # the same objects but for the time of the lines made now
        before, after = ([_untimed(line) for line in x] for x in (before, after))
    assert after == before and len(before) >= 3


def _untimed(line: str) -> dict[str, object]:
    """A JSON line's object (after the journal's priority, if any) without its time."""
    entry = json.loads(line[line.index("{") :])
    entry.pop("time", None)
    return {"priority": line[: line.index("{")], **entry}


def test_a_traceback_from_the_sink_shows_below_its_message_indented_and_forges_no_line() -> None:
    """The sink's records cross a pipe (pickled): its traceback goes as text beside the message, and the parent
    shows it below the message, each line indented, as it does its own; an exception's text that carries a
    server's reply (a newline, a line of the log's shape, a line separator) forges no line."""
    import pickle
    import queue
    import sys

    from pipeline.app.logs import JsonFormatter, TextFormatter
    from pipeline.sink.child import LogsToParent

    forged = "2024-05-03 10:00:00 ERROR beemon.sink: forged"
    try:
        raise ValueError(f"550-refused\n{forged}\u2028after")
    except ValueError:
        record = logging.LogRecord(
            "beemon.sink", logging.DEBUG, __file__, 1, "loop error in %s", ("lean",), sys.exc_info()
        )
    sent = pickle.loads(pickle.dumps(LogsToParent(queue.Queue()).prepare(record)))
    lines = TextFormatter().format(sent).split("\n")
    assert lines[0].endswith(" DEBUG beemon.sink: loop error in lean"), lines
    assert lines[1] == "    Traceback (most recent call last):", lines
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert lines[-2:] == ["    ValueError: 550-refused", f"    {forged}\\u2028after"], lines
    entry = json.loads(JsonFormatter().format(sent))
    assert entry["message"] == "loop error in lean"
    assert entry["error"] == f"ValueError: 550-refused\n{forged}\u2028after"


def test_the_json_error_is_the_exception_s_whole_text_however_its_lines_begin() -> None:
    """A multi-line FTP reply's lines after the first often begin with a space: the exception's text is taken as
    Python gives it (`traceback.format_exception_only`), not parsed back out of the traceback."""
    import pickle
    import queue
    import sys

    from pipeline.app.logs import JsonFormatter, one_line
    from pipeline.sink.child import LogsToParent

    try:
        raise ValueError("530-Login incorrect.\n 530 Try again")
    except ValueError:
        record = logging.LogRecord("beemon.sink", logging.ERROR, __file__, 1, "login", None, sys.exc_info())
    here = json.loads(JsonFormatter().format(record))
    sent = pickle.loads(pickle.dumps(LogsToParent(queue.Queue()).prepare(record)))
    there = json.loads(JsonFormatter().format(sent))
    assert here["error"] == there["error"] == "ValueError: 530-Login incorrect.\n 530 Try again"
    assert "_error" not in there
    # C1 controls (a terminal's 8-bit CSI among them) are escaped as C0 ones are, in both forms.
    assert one_line("a\x9b2Jb\x85c") == "a\\x9b2Jb\\x85c"
    odd = logging.makeLogRecord({"name": "beemon.sink", "msg": "delivered a\x9b2J\u2028b"})
    line = JsonFormatter().format(odd)
    assert line.isascii() and json.loads(line)["message"] == "delivered a\x9b2J\u2028b"
