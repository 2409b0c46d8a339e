"""UploadSession, the original API's facade: its constructors and what it shows (the `with` value: tests/conformance)."""

from __future__ import annotations

from pipeline.ftp.session import UploadSession, temp_name


def test_repr_and_original_constructor_hide_the_password(credentials):
    session = UploadSession.original(credentials.username, credentials.password, "127.0.0.1", 2121, "/upload")
    assert credentials.password not in repr(session)
    assert credentials.password not in repr(session.params)
    assert session.params.remote_root == "/upload"
    assert temp_name("/a/b/c.wav") == "/a/b/.c.wav.part"
