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
