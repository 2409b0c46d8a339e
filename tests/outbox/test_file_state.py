"""The outbox's file state: which stat a file gets (regular files only, never a link), and whether it is finished."""

from __future__ import annotations

import errno
import os

import pytest

from pipeline.outbox.file_state import finished_file_stat, held_for_reading, regular_file_stat


def test_regular_file_stat_refuses_symlinks_directories_and_missing_files(tmp_path):
    (tmp_path / "f.wav").write_bytes(b"abc")
    (tmp_path / "link.wav").symlink_to(tmp_path / "f.wav")
    assert regular_file_stat(str(tmp_path / "f.wav")).st_size == 3
    assert regular_file_stat(str(tmp_path / "link.wav")) is None
    assert regular_file_stat(str(tmp_path)) is None
    assert regular_file_stat(str(tmp_path / "missing.wav")) is None


def test_finished_file_stat_says_none_while_a_writer_has_the_file_open(tmp_path):
    path = tmp_path / "a.wav"
    with open(path, "wb") as handle:
        handle.write(b"abc")
        handle.flush()
        assert finished_file_stat(str(path)) is None
    with open(path, "rb"):  # readers do not count
        assert finished_file_stat(str(path)).st_size == 3
    (tmp_path / "link.wav").symlink_to(path)
    assert finished_file_stat(str(tmp_path / "link.wav")) is None
    assert finished_file_stat(str(tmp_path / "gone.wav")) is None


def test_a_writer_is_held_off_during_the_lease_and_free_to_open_once_it_is_over(tmp_path):
    """The lease ends with the block (closing its descriptor drops it): a sensor opening the file for writing
    right after the sink's check is not held up, and one opening it during the check is (a non-blocking open
    for writing under a read lease fails with EWOULDBLOCK instead of waiting)."""
    path = tmp_path / "a.wav"
    path.write_bytes(b"abc")
    with held_for_reading(str(path)) as held:
        assert held is not None
        with pytest.raises(OSError) as during:
            os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        assert during.value.errno == errno.EWOULDBLOCK
    os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))


#: In a fresh process: a writer opens the file while the lease is held (the break signal goes to this process),
#: then the process says which signal the lease was given (0: none, SIGIO's default target) and that it lived on.
LEASE_BROKEN = """
import fcntl, os, sys, time
from pipeline.outbox import file_state
if sys.argv[2] == "quiet":
    file_state.ignore_lease_breaks()
with file_state.held_for_reading(sys.argv[1]) as held:
    signal_set = fcntl.fcntl(held.fd, fcntl.F_GETSIG)
    try:
        os.open(sys.argv[1], os.O_WRONLY | os.O_NONBLOCK)
    except BlockingIOError:
        pass
    time.sleep(0.2)  # the break's signal is delivered meanwhile
print(signal_set, "alive")
"""


@pytest.mark.parametrize("mode", ["quiet", "default"])
def test_a_writer_breaking_the_lease_never_ends_the_process_with_or_without_a_signal_set_per_lease(tmp_path, mode):
    """The sink ignores SIGIO (`ignore_lease_breaks`), so its leases skip the `F_SETSIG` to SIGURG (a system call
    per delivered file); any other process keeps it. Either way a writer opening the file during the check
    (the lease broken) must not end the process: SIGIO's default action would."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "a.wav"
    path.write_bytes(b"abc")
    done = subprocess.run(
        [sys.executable, "-c", LEASE_BROKEN, str(path), mode], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, (done.returncode, done.stderr)
    expected = 0 if mode == "quiet" else int(signal.SIGURG)
    assert done.stdout.split() == [str(expected), "alive"]
