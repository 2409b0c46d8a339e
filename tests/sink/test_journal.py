"""The manifest journal on a real disk: a torn last line is ignored and cut before the next append; the last
line of a name wins; lines of older versions (no size) are still read. The manifest's text: coreutils' format
with a size comment per entry, merged with a server's manifest without losing a line of others."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pipeline.sink.journal import DayJournal, parse_journal, pending_days, unsent_days
from pipeline.sink.manifest import Manifests, day_of
from pipeline.sink.manifest_paths import days_of
from pipeline.sink.manifest_text import Entry, ManifestText, render
from tests.servers import unavailable

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_append(tmp_path):
    journal = DayJournal(str(tmp_path), "/data/rpi4/2022-07-19")
    journal.append("audio/x.wav", A, 3)
    with open(journal.path, "ab") as out:  # a SIGKILL in the middle of a write
        out.write(f"{B} 12 audio/y.w".encode())
    assert DayJournal(str(tmp_path), journal.day).read() == {"audio/x.wav": Entry(A, 3)}
    again = DayJournal(str(tmp_path), journal.day)  # the next run
    again.append("audio/y.wav", B, 12)
    assert again.read() == {"audio/x.wav": Entry(A, 3), "audio/y.wav": Entry(B, 12)}
    assert Path(journal.path).read_text() == f"{A} 3 audio/x.wav\n{B} 12 audio/y.wav\n"


def test_a_redelivered_file_replaces_its_own_line_and_the_journal_is_found_again(tmp_path):
    journal = DayJournal(str(tmp_path), "/data/rpi4/2022-07-19")
    journal.append("video/v.h264", A, 10)
    journal.append("video/v.h264", C, 11)
    [found] = DayJournal.all_in(str(tmp_path))
    assert found.day == "/data/rpi4/2022-07-19"
    assert found.read() == {"video/v.h264": Entry(C, 11)}


def test_a_journal_of_an_older_version_without_sizes_is_still_read_and_appended_to(tmp_path):
    journal = DayJournal(str(tmp_path), "/data/rpi4/2022-07-19")
    Path(journal.path).write_text(f"{A}  audio/123 x.wav\n{B} *audio/y.wav\n")
    journal.append("audio/z.wav", C, 7)
    assert journal.read() == {"audio/123 x.wav": Entry(A), "audio/y.wav": Entry(B), "audio/z.wav": Entry(C, 7)}
    assert parse_journal(f"{A} 5 audio/x.wav\n{A} 5audio/bad.wav\n") == {"audio/x.wav": Entry(A, 5)}


def test_manifest_format_is_sha256sum_text_sorted_by_name_with_a_size_line_before_each_entry(tmp_path):
    entries = {"video/b.h264": Entry(B, 2), "audio/a.wav": Entry(A, 1)}
    text = render(entries).decode()
    assert text == f"# size 1 audio/a.wav\n{A}  audio/a.wav\n# size 2 video/b.h264\n{B}  video/b.h264\n"
    assert ManifestText.parse(text + f"{C} *temp/binary-mode.csv").entries == {
        **entries,
        "temp/binary-mode.csv": Entry(C),
    }
    # coreutils reads it as it is, --strict included (the size lines are comments to it)
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "x.wav").write_bytes(b"abc")
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    (tmp_path / "SHA256SUMS").write_bytes(render({"audio/x.wav": Entry(sha, 3)}))
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=tmp_path, capture_output=True, text=True)
    assert (check.returncode, check.stdout) == (0, "audio/x.wav: OK\n"), check.stderr


def test_a_merge_replaces_only_the_entries_it_redelivers_and_keeps_every_line_of_others():
    server = (
        "# made by another uploader\n"
        f"{A.upper()} *audio/theirs.wav\n"  # another tool's entry, written back as it was
        "# their note on ours\n"
        f"{B}  video/ours.h264\n"  # an older version's entry (no size), re-delivered now
        "# size 9 video/kept.h264\n"
        f"{C}  video/kept.h264\n"
        "# size 4 video/orphan.h264\n"  # a size line whose entry is gone: kept, not attached
        "# trailing words"  # no newline at the end
    )
    parsed = ManifestText.parse(server)
    assert parsed.entries == {"audio/theirs.wav": Entry(A), "video/ours.h264": Entry(B), "video/kept.h264": Entry(C, 9)}
    merged = parsed.merged({"video/ours.h264": Entry(C, 5), "audio/new.wav": Entry(A, 1), "video/kept.h264": Entry(C)})
    assert merged.render().decode() == (
        "# made by another uploader\n"
        f"# size 1 audio/new.wav\n{A}  audio/new.wav\n"
        f"{A.upper()} *audio/theirs.wav\n"
        f"# size 9 video/kept.h264\n{C}  video/kept.h264\n"  # the same hash without a size: the size stays
        f"# their note on ours\n# size 5 video/ours.h264\n{C}  video/ours.h264\n"
        "# size 4 video/orphan.h264\n# trailing words\n"
    )
    assert ManifestText.parse(merged.render().decode()).merged({}).render() == merged.render()  # stable
    crlf = f"# size 3 audio/w.wav\r\n{A}  audio/w.wav\r\n"  # written on Windows: read alike, kept as written
    assert ManifestText.parse(crlf).entries == {"audio/w.wav": Entry(A, 3)}
    assert ManifestText.parse(crlf).merged({"audio/w.wav": Entry(A, 3)}).render() == crlf.encode()


def test_only_paths_laid_out_by_day_and_sensor_get_a_manifest_line():
    assert day_of("/data/rpi4/2022-07-19/audio/x.wav") == ("/data/rpi4/2022-07-19", "audio/x.wav")
    assert day_of("/data/rpi4/elsewhere/x.wav") is None


def test_the_days_the_board_holds_are_those_of_its_paths_one_by_one():
    """`days_of` asks each folder once (the board's whole queue, once a second): the same days as `day_of` per path."""
    paths = [
        "/data/rpi4/2022-07-19/audio/x.wav",
        "/data/rpi4/2022-07-19/audio/y.wav",
        "/data/rpi4/2022-07-19/video/",  # no name: no day
        "/data/rpi5//2022-07-20//audio//z.wav",
        "/data/rpi4/elsewhere/x.wav",
        "2022-07-21/audio/x.wav",
        "audio/x.wav",
        "x.wav",
        "",
        "/",
    ]
    for path in paths:
        assert days_of([path]) == {found[0] for found in [day_of(path)] if found is not None}, path
    assert days_of(paths) == {"/data/rpi4/2022-07-19", "/data/rpi5//2022-07-20", "2022-07-21"}


#: Four workers verifying small files at once, each recording its line (as the sink's workers do).
CONCURRENT_APPENDS = """
import sys, threading
from pipeline.sink.journal import DayJournal
journal = DayJournal(sys.argv[1], "/data/st/2024-05-01")
def worker(k):
    for i in range(100):
        journal.append(f"audio/st@2024-05-01@{k}-{i:03d}.wav", f"{k:x}" * 64, 4096 + i)
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_lines_appended_by_four_workers_at_once_are_all_whole_and_share_their_fsyncs(tmp_path):
    """Four workers each recording 100 verified files: every line is in the journal, whole, and the
    fsyncs (counted by strace, the kernel's view) are shared: before, each line had its own, taken in
    turn under one lock, which held the other workers back for most of a small file's delivery."""
    strace = shutil.which("strace")
    if strace is None:
        unavailable("strace is not installed (Debian's strace)")
    counts = tmp_path / "strace.txt"
    folder = tmp_path / "manifests"
    subprocess.run(
        [
            strace,
            "-f",
            "-c",
            "-e",
            "trace=fsync",
            "-o",
            str(counts),
            sys.executable,
            "-c",
            CONCURRENT_APPENDS,
            str(folder),
        ],
        check=True,
        cwd=Path(__file__).parents[2],
    )
    entries = DayJournal(str(folder), "/data/st/2024-05-01").read()
    assert len(entries) == 400
    assert all(
        entries[f"audio/st@2024-05-01@{k}-{i:03d}.wav"] == Entry(f"{k:x}" * 64, 4096 + i)
        for k in range(4)
        for i in range(100)
    )
    [fsyncs] = [int(line.split()[3]) for line in counts.read_text().splitlines() if line.rstrip().endswith(" fsync")]
    assert fsyncs < 400 * 0.8, fsyncs  # 401 before (each line, and the new journal's folder)


SEQUENTIAL_APPENDS = """
import sys
from pipeline.sink.journal import DayJournal
journal = DayJournal(sys.argv[1], "/data/st/2024-05-01")
for i in range(100):
    journal.append(f"audio/st@2024-05-01@{i:03d}.wav", "a" * 64, 4096 + i)
"""


def test_a_journal_is_opened_once_not_per_line(tmp_path):
    """A day's lines are written and fsync'ed through one kept descriptor: each opening was two more system
    calls per file (a path lookup and a close) and, closed after writing, an event for the outbox's watch
    (two per file before: the line's and its fsync's). Counted by strace: the kernel's view."""
    strace = shutil.which("strace")
    if strace is None:
        unavailable("strace is not installed (Debian's strace)")
    trace = tmp_path / "strace.txt"
    folder = tmp_path / "manifests"
    command = [strace, "-f", "-e", "trace=openat", "-o", str(trace), sys.executable, "-c", SEQUENTIAL_APPENDS]
    subprocess.run([*command, str(folder)], check=True, cwd=Path(__file__).parents[2])
    opens = [line for line in trace.read_text().splitlines() if ".journal" in line]
    assert len(opens) == 1 and "O_WRONLY" in opens[0], opens  # 200 before: each line's, each fsync's
    assert len(DayJournal(str(folder), "/data/st/2024-05-01").read()) == 100


def test_a_journal_deleted_or_replaced_between_lines_gets_the_next_line_at_its_path(tmp_path):
    """Someone cleans the state folder, or puts another journal in place, while the sink runs: the next line
    is written to the file that is at the journal's path then (created if missing), not into the old file
    the kept descriptor still points at, where nobody would ever read it."""
    folder = tmp_path / "manifests"
    journal = DayJournal(str(folder), "/data/st/2024-05-01")
    journal.append("audio/a.wav", "a" * 64, 1)
    os.unlink(journal.path)
    journal.append("audio/b.wav", "b" * 64, 2)
    assert DayJournal(str(folder), "/data/st/2024-05-01").read() == {"audio/b.wav": Entry("b" * 64, 2)}
    replacement = folder / "replacement"
    replacement.write_text(f"{'c' * 64} 3 audio/c.wav\n")
    os.replace(replacement, journal.path)
    journal.append("audio/d.wav", "d" * 64, 4)
    assert DayJournal(str(folder), "/data/st/2024-05-01").read() == {
        "audio/c.wav": Entry("c" * 64, 3),
        "audio/d.wav": Entry("d" * 64, 4),
    }


def test_a_line_written_after_the_state_folder_was_moved_aside_is_at_the_journals_path(tmp_path):
    """The outbox moved aside (kept as a backup) and made again while the sink runs: the old journal keeps its
    link in the old folder, so a link count says nothing; the next line goes to the file at the journal's
    path, from which the day's manifest is made."""
    folder = tmp_path / "outbox" / ".beemon" / "manifests"
    journal = DayJournal(str(folder), "/data/st/2024-05-01")
    journal.append("audio/a.wav", "a" * 64, 1)
    os.rename(tmp_path / "outbox", tmp_path / "outbox.old")
    (tmp_path / "outbox").mkdir()
    journal.append("audio/b.wav", "b" * 64, 2)
    assert DayJournal(str(folder), "/data/st/2024-05-01").read() == {"audio/b.wav": Entry("b" * 64, 2)}
    journal.append("audio/c.wav", "c" * 64, 3)  # and the lines after it, through the new descriptor
    assert len(DayJournal(str(folder), "/data/st/2024-05-01").read()) == 2


CUT_SHORT = """
import os, resource, signal, sys
from pipeline.sink.journal import DayJournal
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the size limit fails the write (EFBIG) instead of killing
journal = DayJournal(sys.argv[1], "/data/st/2024-05-01")
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
journal.append("audio/a.wav", "a" * 64, 1)
journal.append("audio/b.wav", "b" * 64, 2)
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(journal.path) + 30, hard))  # the disk fills up
try:
    journal.append("audio/c.wav", "c" * 64, 3)
except OSError as error:
    print("refused:", error.strerror)
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # room again
journal.append("audio/d.wav", "d" * 64, 4)
"""


def test_a_line_cut_short_by_a_full_disk_is_refused_and_the_next_line_is_whole(tmp_path):
    """The disk fills up in the middle of a line (a file size limit makes it real: the kernel writes what fits
    and refuses the rest): the append raises, so the caller keeps the local file; the torn piece is cut off
    before the next line, which would otherwise run on from it and be lost with it."""
    folder = tmp_path / "manifests"
    done = subprocess.run(
        [sys.executable, "-c", CUT_SHORT, str(folder)],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.startswith("refused:"), done.stdout + done.stderr
    assert DayJournal(str(folder), "/data/st/2024-05-01").read() == {
        "audio/a.wav": Entry("a" * 64, 1),
        "audio/b.wav": Entry("b" * 64, 2),
        "audio/d.wav": Entry("d" * 64, 4),
    }


def test_a_journal_is_pending_until_the_server_holds_its_lines_and_a_past_days_until_it_is_gone(tmp_path):
    """What `run --once` asks the sink to put up at its end (`pending_days`): a journal with lines the server's
    manifest lacks, and every past day's (its manifest is read back before the journal goes)."""
    folder = str(tmp_path / "manifests")
    assert pending_days(folder, "2022-07-20") == []  # no folder yet: nothing, and no error
    today = DayJournal(folder, "/data/rpi4/2022-07-20")
    past = DayJournal(folder, "/data/rpi4/2022-07-19")
    today.append("audio/x.wav", A, 3)
    past.append("audio/y.wav", B, 4)
    assert pending_days(folder, "2022-07-20") == [past.day, today.day]
    for journal in (today, past):
        journal.mark_sent(journal.snapshot()[1])  # both manifests put with every line
    assert today.sent_all() and pending_days(folder, "2022-07-20") == [past.day]
    today.append("audio/z.wav", C, 5)  # a line after the put
    assert not today.sent_all() and pending_days(folder, "2022-07-20") == [past.day, today.day]
    assert unsent_days(folder) == [today.day]  # what a run cut short names: the past day's lines are all up
    past.remove()  # the mark goes with its journal
    assert sorted(os.listdir(folder)) == [os.path.basename(today.path), os.path.basename(today.path) + ".sent"]


def test_a_restored_journal_the_server_holds_whole_is_not_put_again_unless_its_day_is_past(tmp_path):
    folder = str(tmp_path)
    for day in ("/data/rpi4/2022-07-19", "/data/rpi4/2022-07-20"):
        journal = DayJournal(folder, day)
        journal.append("audio/x.wav", A, 3)
        journal.mark_sent(journal.snapshot()[1])
    manifests = Manifests(folder, 600, today=lambda: "2022-07-20")
    manifests.restore()
    assert manifests.pending() == ["/data/rpi4/2022-07-19"]
