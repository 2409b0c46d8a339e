"""Bad input on the station: odd names, empty, vanishing, unreadable, linked, growing files, odd file systems.

Each case: the rest keeps flowing, the log says what happened to that file, and nothing is deleted
that was not delivered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli, uploader_env
from tests.ftp_faults import Faults
from tests.helpers import lines_with, wait_until
from tests.reliability.conftest import outbox_files, remote_of

DAY = "2022-07-19"
NOON = datetime.fromisoformat(f"{DAY}T12:00:00").timestamp()  # local time: the mapping dates by local time


def put(outbox: Path, relative: str | bytes, content: bytes, mtime: float = NOON) -> Path:
    """A finished file at `relative` (bytes for names that are not UTF-8), its mtime set."""
    path = Path(os.fsdecode(os.path.join(os.fsencode(outbox), os.fsencode(relative))))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (mtime, mtime))
    return path


def test_odd_names_empty_files_and_names_outside_the_convention_all_arrive_where_the_mapping_says(
    watched_server, outbox, tmp_path
):
    server = watched_server()
    cases = {
        f"audio/{DAY}/rpi4-test@{DAY}@10 00 00.wav": f"{DAY}/audio/rpi4-test@{DAY}@10 00 00.wav",  # spaces
        f"audio/{DAY}/ leading and trailing .wav": f"{DAY}/audio/ leading and trailing .wav",
        f"audio/{DAY}/rüsselkäfer-ñ-日本.wav": f"{DAY}/audio/rüsselkäfer-ñ-日本.wav",  # non-ASCII
        f"audio/{DAY}/line\nbreak\r.wav": f"{DAY}/audio/line_break_.wav",  # control characters replaced
        f"audio/{DAY}/-rf.wav": f"{DAY}/audio/-rf.wav",  # leading dashes
        f"audio/{DAY}/--help.wav": f"{DAY}/audio/--help.wav",
        f"audio/{DAY}/a..b.wav": f"{DAY}/audio/a..b.wav",  # dots inside a name
        f"audio/{DAY}/x..\\..\\escape.wav": f"{DAY}/audio/x.._.._escape.wav",  # backslashes are not separators here
        f"audio/{DAY}/tab\there.wav": f"{DAY}/audio/tab_here.wav",
        "recording.wav": f"{DAY}/audio/recording.wav",  # no station, date or sensor folder: defaults
        "audio/unsorted/rec.wav": f"{DAY}/audio/rec.wav",  # sensor folder, no date folder: the mtime's date
        "notes.txt": f"{DAY}/misc/notes.txt",
        "scale/2022-07-20/weight@not-a-date.bin": "2022-07-20/scale/weight@not-a-date.bin",
        # another station's name: still this station's folder (see docs/architecture.rst, "Whose station folder")
        f"audio/{DAY}/other-station@{DAY}@09-00-00.wav": f"{DAY}/audio/other-station@{DAY}@09-00-00.wav",
    }
    expected = {}
    for index, (relative, remote) in enumerate(cases.items()):
        content = b"" if index == 0 else f"content of {relative!r}".encode()
        put(outbox, relative, content)
        expected[remote_of(remote)] = content
    dotted = put(outbox, f"audio/{DAY}/..\\..\\escape.wav", b"a dot-file: ignored by upload.ignore_patterns")
    undecodable = put(outbox, f"audio/{DAY}/".encode() + b"bad-\xff\xfe-bytes.wav", b"not UTF-8")
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    expected[remote_of(f"{DAY}/audio/bad-__-bytes.wav")] = b"not UTF-8"  # undecodable bytes replaced
    assert server.files() == expected
    assert outbox_files(outbox) == [f"audio/{DAY}/{dotted.name}"]  # ignored, so neither sent nor deleted
    assert not undecodable.exists()
    assert len(lines_with(done.stderr, "delivered ")) == len(expected) + 1  # each file, and the summary line


def test_files_vanishing_before_their_upload_are_logged_as_gone_and_the_rest_flows(
    watched_server, outbox, tmp_path, start_uploader
):
    logins = threading.Event()
    server = watched_server(Faults(hold={"PASS": logins}))
    keep = {put(outbox, f"audio/{DAY}/keep-{i}.wav", b"RIFF keep %d" % i): i for i in range(3)}
    vanish = [put(outbox, f"audio/{DAY}/vanish-{i}.wav", b"RIFF vanish %d" % i) for i in range(3)]
    run = start_uploader(uploader_env(server, outbox, tmp_path), "--log-level", "DEBUG", "run", "--stats-interval", "0")
    try:
        wait_until(lambda: all(f"queued {path}" in run.output() for path in [*keep, *vanish]), timeout=20)
        for path in vanish:
            path.unlink()
    finally:
        logins.set()
    wait_until(lambda: not any(path.exists() for path in keep), timeout=20)
    wait_until(lambda: all(f"{path} is gone from the outbox" in run.output() for path in vanish), timeout=20)
    assert run.stop() == 0, run.output()[-6000:]
    assert sorted(server.files()) == sorted(remote_of(f"{DAY}/audio/{path.name}") for path in keep)
    assert server.watch.stored("vanish") == []


def test_a_file_deleted_or_replaced_during_its_upload_never_loses_the_version_that_stays(
    watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    held = server.watch.hold_transfers()
    deleted = put(outbox, f"video/{DAY}/deleted.h264", os.urandom(20_000_000))
    content = deleted.read_bytes()
    run = start_uploader(uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1"))
    wait_until(lambda: server.watch.stalls == 0, timeout=20)  # mid-transfer, the server holding it
    deleted.unlink()  # the station (or a person) removes it: the open file is still read whole
    held.set()
    wait_until(lambda: remote_of(f"{DAY}/video/deleted.h264") in server.files(), timeout=20)

    held = server.watch.hold_transfers()
    replaced = put(outbox, f"video/{DAY}/replaced.h264", os.urandom(20_000_000))
    wait_until(lambda: server.watch.stalls == 0, timeout=20)
    newer = os.urandom(300_000)
    temporary = replaced.with_name(".replaced.h264.tmp")
    temporary.write_bytes(newer)
    os.replace(temporary, replaced)  # an atomic save of a new version over the one being sent
    held.set()
    wait_until(lambda: not replaced.exists(), timeout=30)
    assert run.stop() == 0, run.output()[-6000:]
    files = server.files()
    assert files[remote_of(f"{DAY}/video/deleted.h264")] == content
    assert files[remote_of(f"{DAY}/video/replaced.h264")] == newer
    assert outbox_files(outbox) == []


def _without_file_permission_override() -> list[str]:
    """A prefix that makes the uploader subject to file modes (as root it would read mode 000 anyway)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a mode-000 file would be readable, nothing to test")
    return [setpriv, "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def test_an_unreadable_file_is_reported_kept_and_does_not_hold_up_the_rest(watched_server, outbox, tmp_path):
    server = watched_server()
    preexec = _without_file_permission_override()
    good = [put(outbox, f"audio/{DAY}/good-{i}.wav", b"RIFF good %d" % i) for i in range(3)]
    locked = put(outbox, f"audio/{DAY}/locked.wav", b"RIFF locked")
    locked.chmod(0)
    env = uploader_env(server, outbox, tmp_path)
    done = subprocess.run(
        [*preexec, *__import__("tests.e2e.conftest", fromlist=["cli"]).cli("run", "--once", "--max-retries", "1")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert sorted(server.files()) == sorted(remote_of(f"{DAY}/audio/{path.name}") for path in good)
    assert outbox_files(outbox) == [f"audio/{DAY}/locked.wav"]
    locked.chmod(0o644)
    assert locked.read_bytes() == b"RIFF locked"
    assert lines_with(done.stderr, f"not delivered: {locked}") and "Permission denied" in done.stderr, done.stderr


def test_symlinks_in_the_outbox_are_not_followed_and_are_logged(watched_server, outbox, tmp_path, start_uploader):
    server = watched_server()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.wav"
    secret.write_bytes(b"not for upload")
    (outside / "2022-07-19").mkdir()
    (outside / "2022-07-19" / "deep.wav").write_bytes(b"not for upload either")
    (outbox / "audio" / DAY).mkdir(parents=True)
    file_link = outbox / "audio" / DAY / "link.wav"
    file_link.symlink_to(secret)
    folder_link = outbox / "video"
    folder_link.symlink_to(outside)
    normal = put(outbox, f"audio/{DAY}/normal.wav", b"RIFF normal")
    run = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: not normal.exists(), timeout=20)
    live_link = outbox / "audio" / DAY / "live-link.wav"
    live_link.symlink_to(secret)  # made while running
    after = put(outbox, f"audio/{DAY}/after.wav", b"RIFF after", mtime=time.time())
    wait_until(lambda: not after.exists(), timeout=20)
    wait_until(lambda: f"symlink {live_link}" in run.output(), timeout=5)
    assert run.stop() == 0, run.output()[-6000:]
    output = run.output()
    assert sorted(server.files()) == [remote_of(f"{DAY}/audio/after.wav"), remote_of(f"{DAY}/audio/normal.wav")]
    assert file_link.is_symlink() and folder_link.is_symlink() and live_link.is_symlink()
    assert secret.read_bytes() == b"not for upload"
    for link in (file_link, folder_link, live_link):
        assert len(lines_with(output, f"symlink {link}")) == 1, output


def test_folders_deleted_while_they_are_scanned_do_not_stop_the_flow(
    scale, watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_WATCH__RESCAN_INTERVAL_SECONDS="0.05")
    run = start_uploader(env)
    stop = threading.Event()
    churned: dict[str, bytes] = {}

    def churn() -> None:
        """Make and delete whole date folders of files as fast as possible, racing the scans and the watch."""
        index = 0
        while not stop.is_set():
            folder = outbox / "scale" / f"2021-01-{index % 28 + 1:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(20):
                content = b"churn %d %d" % (index, n)
                (folder / f"c{index}-{n}.bin").write_bytes(content)
                churned[remote_of(f"{folder.name}/scale/c{index}-{n}.bin")] = content
            shutil.rmtree(folder, ignore_errors=True)
            index += 1

    thread = threading.Thread(target=churn, daemon=True)
    thread.start()
    started = time.monotonic()
    kept = []
    try:
        while time.monotonic() - started < scale.churn_seconds:
            kept.append(put(outbox, f"audio/{DAY}/kept-{len(kept)}.wav", b"RIFF %d" % len(kept), mtime=time.time()))
            wait_until(lambda: not kept[-1].exists(), timeout=20)
    finally:
        stop.set()
        thread.join(10)
    assert run.alive(), run.output()
    assert run.stop() == 0, run.output()[-6000:]
    output = run.output()
    files = server.files()
    assert {remote_of(f"{DAY}/audio/{path.name}") for path in kept} <= set(files)
    # A churned file that made it is whole; one that did not was never half-shown.
    assert all(files[path] == churned[path] for path in files if "/scale/" in path)
    assert "stream failed" not in output and "Traceback" not in output, output[-3000:]


def test_a_file_growing_while_it_uploads_is_never_shown_short_and_arrives_whole(
    watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    held = server.watch.hold_transfers()
    growing = put(outbox, f"video/{DAY}/growing.h264", os.urandom(16_000_000))
    run = start_uploader(uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1"))
    wait_until(lambda: server.watch.stalls == 0, timeout=20)  # its upload is under way
    with growing.open("ab") as more:  # the station was not done after all
        more.write(os.urandom(1_000_000))
    content = growing.read_bytes()
    held.set()
    wait_until(lambda: not growing.exists(), timeout=30)
    assert run.stop() == 0, run.output()[-6000:]
    final = remote_of(f"{DAY}/video/growing.h264")
    assert server.files() == {final: content}
    shown = [digest for path, digest in server.watch.renames if path == final]
    assert shown == [server.digests()[final]], "the final name showed a short version first"
    assert lines_with(run.output(), "changed while it was uploaded"), run.output()
