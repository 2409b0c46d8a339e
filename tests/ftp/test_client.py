"""FtpClient's passive mode against a real pyftpdlib server on loopback (the port asked ahead: test_passive_ahead.py)."""

from __future__ import annotations

import threading

import pytest

from pipeline.ftp.errors import PermanentFailure
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadSession
from tests.ftp_faults import Faults
from tests.helpers import params_for, write


def test_epsv_refused_falls_back_to_pasv_and_ignores_the_announced_address(make_server, ftp_root, outbox, credentials):
    faults = Faults(refuse={"EPSV": "502 Command not implemented."})
    server = make_server(faults=faults, masquerade_address="10.255.0.7")
    data = write(outbox / "a.wav", 2000)
    with UploadSession(params_for(server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 2000)
        session.upload(str(outbox / "a.wav"), "b.wav", 2000)
    assert (ftp_root / "upload/b.wav").read_bytes() == data
    assert [cmd for cmd, _ in faults.journal].count("EPSV") == 1
    assert [cmd for cmd, _ in faults.journal].count("PASV") == 2


def test_an_ipv6_server_gets_its_files_over_data_connections_of_its_family(ftp_root, outbox, credentials):
    """A station on an IPv6-only link: the control connection to `::1`, every passive data connection made
    straight to the control peer's address (no name lookup per file) in the same family."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import ThreadedFTPServer

    (ftp_root / "upload").mkdir(parents=True, exist_ok=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user(credentials.username, credentials.password, str(ftp_root), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": authorizer})
    try:
        server = ThreadedFTPServer(("::1", 0), handler)
    except OSError as error:  # no IPv6 loopback in this sandbox
        pytest.skip(f"no IPv6 loopback here: {error}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.1}, daemon=True)
    thread.start()
    try:
        params = FtpParams(
            host="::1",
            port=server.socket.getsockname()[1],
            username=credentials.username,
            password=credentials.password,
            remote_root="/upload",
            timeout=5.0,
        )
        data = write(outbox / "a.wav", 3000)
        with UploadSession(params) as session:
            for name in ("a.wav", "b.wav"):
                session.upload(str(outbox / "a.wav"), name, 3000)
    finally:
        server.close_all()
        thread.join(5)
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert (ftp_root / "upload/b.wav").read_bytes() == data


@pytest.mark.parametrize("name", ["a\r\nDELE a.wav", "a\nb.wav", "a\rb.wav"])
def test_a_name_with_a_line_break_is_refused_and_sends_nothing_in_the_flights(
    make_server, ftp_root, outbox, credentials, name
):
    """A line break in a remote name would end the command there and send what follows as another
    command: the file is refused (permanent) and nothing of it reaches the server, in any flight."""
    faults = Faults()
    server = make_server(faults=faults)
    write(outbox / "a.wav", 2000)
    with UploadSession(params_for(server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 2000)
        before = len(faults.journal)
        with pytest.raises(PermanentFailure):
            session.upload(str(outbox / "a.wav"), f"d/{name}", 2000)
        with pytest.raises(PermanentFailure):
            session.upload(str(outbox / "a.wav"), name, 2000)
        session.upload(str(outbox / "a.wav"), "b.wav", 2000)  # the session carries on
    assert [cmd for cmd, _ in faults.journal[before:] if cmd in ("DELE", "B.WAV", "A.WAV")] == []
    assert sorted(p.name for p in (ftp_root / "upload").iterdir()) == ["a.wav", "b.wav", "d"]
    assert list((ftp_root / "upload/d").iterdir()) == []  # the folder is a good name; the file goes nowhere
