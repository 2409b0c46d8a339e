"""The delivered line's record (`pipeline.sink.delivered_line`): the one logging makes, field for field, at the sink's time."""

from __future__ import annotations

import logging
import pickle
import threading

import pytest

from pipeline.sink import delivered_line
from pipeline.sink.model import Outcome, UploadResult

RESULT = UploadResult(
    "/outbox/audio/st@2026-12-01@10-00-00.wav",
    "/data/st/2026-12-01/audio/st@2026-12-01@10-00-00.wav",
    4096,
    0.01234,
    2,
    Outcome.DELIVERED,
    "226 Transfer complete",
)
AT = 1_764_633_600.4567


def by_logging(result: UploadResult, at: float) -> logging.LogRecord:
    """The record as logging makes it (`Logger.makeRecord`, then the sink's time)."""
    args = (result.local_path, result.remote_path, result.bytes, result.seconds)
    return delivered_line.made_by_logging(args, at, delivered_line.extra_of(result))


def assert_same(made: logging.LogRecord, expected: logging.LogRecord) -> None:
    """Same class, same attributes in the same order, same values (`relativeCreated` to a microsecond)."""
    assert type(made) is type(expected)
    assert list(made.__dict__) == list(expected.__dict__)
    assert made.relativeCreated == pytest.approx(expected.relativeCreated, abs=1e-3)
    differ = {
        key: (value, expected.__dict__[key])
        for key, value in made.__dict__.items()
        if key != "relativeCreated"
        and (value != expected.__dict__[key] or type(value) is not type(expected.__dict__[key]))
    }
    assert differ == {}
    assert made.getMessage() == expected.getMessage()


def test_the_record_is_logging_s_own():
    made = delivered_line.record(RESULT, AT)
    assert_same(made, by_logging(RESULT, AT))
    assert made.getMessage() == (
        f"delivered {RESULT.local_path} -> {RESULT.remote_path} (4096 B, 0.01 s), removed from the outbox"
        " (verified on the server)"
    )
    assert (made.created, made.msecs, made.outcome, made.seconds) == (AT, 456.0, "delivered", 0.012)
    assert type(made.outcome) is str  # the outcome's value, not the enum member
    assert pickle.loads(pickle.dumps(made)).__dict__ == made.__dict__


@pytest.mark.parametrize("flag", ["logThreads", "logProcesses", "logMultiprocessing", "logAsyncioTasks"])
def test_logging_s_switches_are_followed(monkeypatch, flag):
    """A switch logging documents (no thread, process or task names in records) is followed as logging does."""
    if not hasattr(logging, flag):
        pytest.skip(f"this Python's logging has no {flag}")
    monkeypatch.setattr(logging, flag, not getattr(logging, flag))
    assert_same(delivered_line.record(RESULT, AT), by_logging(RESULT, AT))


def test_a_level_name_of_the_user_s_and_another_thread_are_followed():
    logging.addLevelName(logging.INFO, "NOTE")
    try:
        made: list[tuple[logging.LogRecord, logging.LogRecord]] = []
        thread = threading.Thread(
            target=lambda: made.append((delivered_line.record(RESULT, AT), by_logging(RESULT, AT))), name="reader"
        )
        thread.start()
        thread.join()
    finally:
        logging.addLevelName(logging.INFO, "INFO")
    assert_same(*made[0])
    assert (made[0][0].levelname, made[0][0].threadName) == ("NOTE", "reader")


def test_a_record_factory_of_the_user_s_makes_the_record():
    """Told to make records another way (`logging.setLogRecordFactory`), logging makes this one too."""
    stock = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        made = stock(*args, **kwargs)
        made.station = "st"
        return made

    logging.setLogRecordFactory(factory)
    try:
        made = delivered_line.record(RESULT, AT)
    finally:
        logging.setLogRecordFactory(stock)
    assert made.station == "st"
    assert (made.created, made.file, made.getMessage()) == (AT, RESULT.local_path, by_logging(RESULT, AT).getMessage())


def test_a_logger_class_of_the_user_s_makes_the_record(monkeypatch):
    class Marking(logging.Logger):
        def makeRecord(self, *args, **kwargs):
            made = super().makeRecord(*args, **kwargs)
            made.marked = True
            return made

    monkeypatch.setattr(delivered_line.log, "__class__", Marking)
    made = delivered_line.record(RESULT, AT)
    assert made.marked is True
    assert made.created == AT
