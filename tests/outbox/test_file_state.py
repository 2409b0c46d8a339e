"""The outbox's file state: which stat a file gets (regular files only, never a link), and whether it is finished."""

from __future__ import annotations

from pipeline.outbox.file_state import finished_file_stat, regular_file_stat


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
