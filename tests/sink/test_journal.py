"""The manifest journal on a real disk: a torn last line is ignored and cut before the next append; the last
line of a name wins; coreutils' format round-trips."""

from __future__ import annotations

from pathlib import Path

from pipeline.sink.journal import DayJournal, parse_lines, render
from pipeline.sink.manifest import day_of

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    journal = DayJournal(str(tmp_path), "/data/rpi4/2022-07-19")
    journal.append("audio/x.wav", A)
    with open(journal.path, "ab") as out:  # a SIGKILL in the middle of a write
        out.write(f"{B}  audio/y.w".encode())
    assert DayJournal(str(tmp_path), journal.day).read() == {"audio/x.wav": A}
    again = DayJournal(str(tmp_path), journal.day)  # the next run
    again.append("audio/y.wav", B)
    assert again.read() == {"audio/x.wav": A, "audio/y.wav": B}
    assert Path(journal.path).read_text() == f"{A}  audio/x.wav\n{B}  audio/y.wav\n"


def test_a_redelivered_file_replaces_its_own_line_and_the_journal_is_found_again(tmp_path):
    journal = DayJournal(str(tmp_path), "/data/rpi4/2022-07-19")
    journal.append("video/v.h264", A)
    journal.append("video/v.h264", C)
    [found] = DayJournal.all_in(str(tmp_path))
    assert found.day == "/data/rpi4/2022-07-19"
    assert found.read() == {"video/v.h264": C}


def test_manifest_format_is_sha256sum_text_sorted_by_name():
    entries = {"video/b.h264": B, "audio/a.wav": A}
    text = render(entries).decode()
    assert text == f"{A}  audio/a.wav\n{B}  video/b.h264\n"
    assert parse_lines(text + f"{C} *temp/binary-mode.csv\n") == {**entries, "temp/binary-mode.csv": C}


def test_only_paths_laid_out_by_day_and_sensor_get_a_manifest_line():
    assert day_of("/data/rpi4/2022-07-19/audio/x.wav") == ("/data/rpi4/2022-07-19", "audio/x.wav")
    assert day_of("/data/rpi4/elsewhere/x.wav") is None
