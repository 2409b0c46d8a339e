"""FtpClient's passive mode against a real pyftpdlib server on loopback (the port asked ahead: test_passive_ahead.py)."""

from __future__ import annotations

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
