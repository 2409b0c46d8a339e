"""A sensor's day file as a station writes it: appended all day, finished by a `.final` at midnight,
or not finished at all (the power went before midnight), or finished by an empty or cut `.final`;
in upper case too. The real `beemon-uploader` against a loopback server."""

from __future__ import annotations

import os
import time
from datetime import date, timedelta
from pathlib import Path

from tests.e2e.conftest import STATION, run_cli, uploader_env
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of, start_uploader, watched_server  # noqa: F401

YESTERDAY = (date.today() - timedelta(days=1)).isoformat()
TODAY = date.today().isoformat()
OLD = time.time() - 3 * 86_400  # quiet for days: ready for the backfill at once


def lines(count: int, start: int = 0) -> bytes:
    return b"".join(b"%d,21.%d,55\n" % (i, i % 10) for i in range(start, start + count))


def day_csv(outbox: Path, day: str, suffix: str = ".csv") -> Path:
    path = outbox / "temp" / day / f"{STATION}@{day}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append(path: Path, data: bytes) -> None:
    """One reading, as the sensor adds it: open for append, write, close."""
    with path.open("ab") as out:
        out.write(data)


def log_lines(output: str, *needles: str) -> list[str]:
    return [line for line in output.splitlines() if all(needle in line for needle in needles)]


def test_a_past_days_csv_whose_final_never_came_goes_up_once_quiet_and_a_late_final_replaces_it(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    orphan = day_csv(outbox, YESTERDAY)
    append(orphan, lines(30))  # yesterday's readings, the last one a moment ago: the power went, then came back
    today = day_csv(outbox, TODAY)
    append(today, lines(5))
    env = uploader_env(
        server,
        outbox,
        tmp_path,
        BEEMON_UPLOAD__ORPHAN_CSV_AFTER_HOURS="0.0005",  # 1.8 s
        BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="0.3",
    )
    written = time.monotonic()
    uploader = start_uploader(env)
    remote = server.root / remote_of(f"{YESTERDAY}/temp/{orphan.name}")
    wait_until(remote.exists, timeout=30)
    assert time.monotonic() - written >= 1.8  # not before it was quiet for the threshold
    wait_until(lambda: not orphan.exists(), timeout=20)
    assert remote.read_bytes() == lines(30)
    time.sleep(1.0)  # three more rescans: today's growing file is still not sent
    assert uploader.stop() == 0
    output = uploader.output()
    warned = log_lines(output, "WARNING", str(orphan))
    assert len(warned) == 1 and "without its .final" in warned[0], output
    assert outbox_files(outbox) == [f"temp/{TODAY}/{today.name}"]
    assert sorted(server.files()) == [remote_of(f"{YESTERDAY}/temp/{orphan.name}")]

    # The station finds the day's file after all and finishes it: the .final replaces the server's copy,
    # also in a later run that does not remember having sent the bare .csv.
    final = day_csv(outbox, YESTERDAY, ".csv.final")
    final.write_bytes(lines(30) + lines(10, 30))
    os.utime(final, (OLD, OLD))
    done = run_cli(env, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert remote.read_bytes() == lines(40)
    assert outbox_files(outbox) == [f"temp/{TODAY}/{today.name}"]
    assert sorted(server.files()) == [remote_of(f"{YESTERDAY}/temp/{orphan.name}")]


def test_a_final_that_is_empty_or_cut_short_sends_the_longer_csv_and_keeps_nothing_it_lacks(
    watched_server,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    days = [(date.today() - timedelta(days=n)).isoformat() for n in (2, 3, 4)]
    empty_final, cut_final, odd_final = days
    contents = {}
    for day, final_bytes in ((empty_final, b""), (cut_final, lines(12)), (odd_final, b"0,99.9,1\n")):
        csv, final = day_csv(outbox, day), day_csv(outbox, day, ".csv.final")
        csv.write_bytes(lines(40))
        final.write_bytes(final_bytes)
        for path in (csv, final):
            os.utime(path, (OLD, OLD))
        contents[day] = (csv, final)
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    # The server holds the longer file, the whole day, in every case.
    assert server.files() == {remote_of(f"{day}/temp/{STATION}@{day}.csv"): lines(40) for day in days}
    # An empty or cut .final is held by what was delivered: both go. One that differs from the
    # delivered bytes is data of its own: both stay, said in one line.
    assert outbox_files(outbox) == [
        f"temp/{odd_final}/{STATION}@{odd_final}.csv",
        f"temp/{odd_final}/{STATION}@{odd_final}.csv.final",
    ]
    for day in (empty_final, cut_final):
        (chosen,) = log_lines(done.stderr, "WARNING", f"{STATION}@{day}.csv ", "as its day's file")
        assert f"{STATION}@{day}.csv.final is shorter" in chosen
    assert len(log_lines(done.stderr, "WARNING", "kept", f"{STATION}@{odd_final}.csv")) == 1


def test_an_upper_case_daily_CSV_grows_untouched_until_its_FINAL(
    watched_server,  # noqa: F811
    start_uploader,  # noqa: F811
    outbox,
    tmp_path,
):
    server = watched_server()
    uploader = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: "watching" in uploader.output(), timeout=30)
    growing = outbox / "temp" / TODAY / f"{STATION}@{TODAY}.CSV"
    growing.parent.mkdir(parents=True)
    for index in range(20):  # a reading every 0.1 s: each one closed, some gaps longer than the debounce
        append(growing, lines(1, index))
        time.sleep(0.1 if index % 5 else 0.4)
    time.sleep(0.6)
    assert server.files() == {}  # a growing day file is never sent, whatever the case of its extension
    assert growing.read_bytes() == lines(20)
    final = growing.with_name(growing.name + ".FINAL")
    final.write_bytes(lines(20))
    remote = server.root / remote_of(f"{TODAY}/temp/{growing.name}")
    wait_until(lambda: not final.exists() and not growing.exists(), timeout=20)
    assert uploader.stop() == 0
    assert server.files() == {remote_of(f"{TODAY}/temp/{growing.name}"): lines(20)}
    assert remote.read_bytes() == lines(20)
    assert outbox_files(outbox) == []
