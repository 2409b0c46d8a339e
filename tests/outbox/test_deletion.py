"""The deletion rules of local files: a bare daily .csv stays until its .final, and file versions."""

from __future__ import annotations

from pipeline.outbox.deletion import file_version, remove_local_file


def test_remove_local_file_keeps_bare_csv_and_takes_the_csv_with_its_final(tmp_path):
    bare = tmp_path / "st@2024-05-01.csv"
    final = tmp_path / "st@2024-05-01.csv.final"
    wav = tmp_path / "a.wav"
    for path in (bare, final, wav):
        path.write_text("x")
    assert remove_local_file(str(wav)) == [str(wav)]
    assert remove_local_file(str(tmp_path / "other.csv")) == []
    assert remove_local_file(str(final)) == [str(bare), str(final)]  # the bare .csv first
    assert list(tmp_path.iterdir()) == []
    assert remove_local_file(str(wav)) == []  # already gone: not an error


def test_a_bare_csv_is_never_removed(tmp_path):
    bare = tmp_path / "t.csv"
    bare.write_text("x")
    assert remove_local_file(str(bare)) == []
    assert bare.exists()


def test_file_version_is_size_and_mtime_ns(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(b"123")
    assert file_version(str(path)) == (3, path.stat().st_mtime_ns)
    assert file_version(str(tmp_path / "missing")) is None
