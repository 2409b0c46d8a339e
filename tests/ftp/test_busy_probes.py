"""A busy answer (4xx) to a SIZE asked in a flight says nothing of the file: never read as "no such file".

Read as missing, a busy SIZE let the day's manifest go up without the lines already on the server
(lost for good once the journals are gone), and let an upload replace a file the overwrite guard
had to protect. Against a real pyftpdlib server answering one SIZE "450".
"""

from __future__ import annotations

import pytest

from pipeline.ftp.errors import TransientFailure
from pipeline.ftp.session import UploadSession
from pipeline.ftp.transport import FtpTransport
from tests.ftp_faults import Faults
from tests.helpers import params_for, write

BUSY = "450 File busy, try later."
MANIFEST = "a" * 64 + "  audio/old.wav\n"


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_busy_size_of_the_days_manifest_is_a_transient_failure_not_an_empty_manifest(
    make_server, ftp_root, credentials, pipelining
):
    day = ftp_root / "upload/st/2026-12-01"
    day.mkdir(parents=True)
    (day / "SHA256SUMS").write_text(MANIFEST)
    faults = Faults(once={"SIZE": [BUSY]})
    transport = FtpTransport(params_for(make_server(faults=faults), credentials, pipelining=pipelining))
    transport.connect()
    try:
        with pytest.raises(TransientFailure, match="450 File busy"):
            transport.get_small("st/2026-12-01/SHA256SUMS")
        assert transport.get_small("st/2026-12-01/SHA256SUMS") == MANIFEST.encode()  # in step, asked again
    finally:
        transport.close()
    assert (day / "SHA256SUMS").read_text() == MANIFEST


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_busy_size_of_a_guarded_target_never_lets_the_upload_replace_it(
    make_server, ftp_root, outbox, credentials, pipelining
):
    data = write(outbox / "a.wav", 300)
    (ftp_root / "upload").mkdir()
    (ftp_root / "upload/a.wav").write_bytes(b"another recording")
    faults = Faults(once={"SIZE": [BUSY]})
    with UploadSession(params_for(make_server(faults=faults), credentials, pipelining=pipelining)) as session:
        with pytest.raises(TransientFailure):
            session.upload(str(outbox / "a.wav"), "a.wav", len(data), may_replace=lambda n: False)
        session.noop()  # still in step
    assert (ftp_root / "upload/a.wav").read_bytes() == b"another recording"
    assert faults.commands("RNTO") == []


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_password_with_a_line_break_is_refused_before_it_is_sent_whether_the_login_is_one_flight_or_not(
    make_server, credentials, pipelining
):
    faults = Faults()
    server = make_server(faults=faults)
    params = params_for(server, credentials, pipelining=pipelining, password="secret\nDELE x")
    with pytest.raises(Exception) as refused, UploadSession(params):
        pass
    assert "secret" not in str(refused.value) and "DELE" not in str(refused.value)
    assert faults.commands("PASS") == [] and faults.commands("DELE") == []
