"""Names a station should never write, and one day might: a newline, a carriage return, a Unicode line
separator, bytes that are not UTF-8. `run --once` delivers them under a cleaned remote name and removes
them, as it does any file, and every line it logs stays one line, in the text form, the JSON form and the
journal's: a log reader (journald, grep, a shipper that splits lines, a person) must not be shown a forged
line."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from tests.e2e.conftest import cli, run_cli
from tests.field.conftest import field_env
from tests.reliability.conftest import outbox_files, start_uploader  # noqa: F401

DAY = "2024-05-03"
FORGED = "2024-05-03 10:00:00 ERROR beemon.sink: forged.wav"
#: What each line of the text form starts with: the time, the level, the logger.
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
#: ... and of the journal's: the priority, the logger.
JOURNAL_LINE = re.compile(r"^<[0-7]>beemon\.[a-z.]+: ")


def odd_recordings(outbox: Path) -> None:
    folder = outbox / "audio" / DAY
    folder.mkdir(parents=True)
    names = [
        f"rpi4-test@{DAY}@10-00-00\n{FORGED}".encode(),
        f"rpi4-test@{DAY}@10-00-01\rcarriage.wav".encode(),
        f"rpi4-test@{DAY}@10-00-02".encode() + b"\xff\xfe.wav",
        f"rpi4-test@{DAY}@10-00-03\u2028{FORGED}".encode(),
    ]
    for index, name in enumerate(names):
        with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
            handle.write(os.urandom(3_000 + index))


def check(lines: list[str], line: re.Pattern[str], link_server, outbox: Path) -> None:
    assert outbox_files(outbox) == []
    assert len(link_server.arrivals.snapshot()) == 4
    assert lines and all(line.match(text) for text in lines), lines
    delivered = [text for text in lines if " delivered " in text and "->" in text]
    assert len(delivered) == 4, lines
    assert any(f"\\n{FORGED}" in text for text in delivered), delivered
    assert any("\\rcarriage.wav" in text for text in delivered), delivered
    assert any(f"\\u2028{FORGED}" in text for text in delivered), delivered


def test_odd_names_are_delivered_and_each_text_log_line_stays_one_line(link_server, outbox, tmp_path):
    odd_recordings(outbox)
    done = run_cli(field_env(link_server, outbox, tmp_path), "run", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "delivered 4 of 4 files" in done.stderr, done.stderr
    check(done.stderr.splitlines(), TEXT_LINE, link_server, outbox)


def test_odd_names_are_delivered_and_each_journal_line_stays_one_line(link_server, outbox, tmp_path):
    """journald reads each line of a service's stderr as one message: a newline in a name would be a message
    of its own, with the priority and logger the name chose."""
    odd_recordings(outbox)
    log = tmp_path / "journal.log"
    with open(log, "wb") as stream:
        st = os.fstat(stream.fileno())
        env = field_env(link_server, outbox, tmp_path, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        done = subprocess.run(cli("run", "--once"), env=env, stdout=stream, stderr=stream, timeout=60, check=False)
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text
    check(text.splitlines(), JOURNAL_LINE, link_server, outbox)


def test_odd_names_are_delivered_and_each_json_journal_line_is_one_whole_object(link_server, outbox, tmp_path):
    """`--log-format json` under journald: JSON leaves U+2028 raw in a string, and a reader that splits lines
    there (Python's `splitlines`, the journal's own splitting before the fix) cut one event into pieces that
    are no JSON at all."""
    odd_recordings(outbox)
    log = tmp_path / "journal.log"
    with open(log, "wb") as stream:
        st = os.fstat(stream.fileno())
        env = field_env(link_server, outbox, tmp_path, JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}")
        command = cli("--log-format", "json", "run", "--once")
        done = subprocess.run(command, env=env, stdout=stream, stderr=stream, timeout=60, check=False)
    text = log.read_text(errors="replace")
    assert done.returncode == 0, text
    assert outbox_files(outbox) == [] and len(link_server.arrivals.snapshot()) == 4
    lines = text.splitlines()
    assert lines and all(re.match(r"^<[0-7]>\{", line) for line in lines), lines
    events = [json.loads(line[3:]) for line in lines]
    delivered = [event["message"] for event in events if event["message"].startswith("delivered ")]
    assert sum("->" in message for message in delivered) == 4, delivered
    assert any(f"\u2028{FORGED}" in message for message in delivered), delivered
