"""Connect, log in, TLS and what a refusal or a silence at each step becomes, against real pyftpdlib servers
on loopback (plain, faulty, explicit and implicit FTPS)."""

from __future__ import annotations

import pytest

from pipeline.ftp import connection as ftp_connection
from pipeline.ftp.client import make_context
from pipeline.ftp.errors import (
    ConnectionLost,
    SessionFailure,
    TooManyConnections,
)
from pipeline.ftp.params import FtpParams
from pipeline.ftp.quiet import still_quiet
from pipeline.ftp.session import UploadSession
from tests.ftp.support import tls_server
from tests.ftp_faults import Faults, ImplicitTLSHandler
from tests.helpers import params_for, wait_until, write


def test_421_at_login_is_too_many_connections(make_server, credentials):
    server = make_server(faults=Faults(logins_421=1))
    session = UploadSession(params_for(server, credentials))
    with pytest.raises(TooManyConnections, match="421"):
        session.connect()
    assert not session.connected
    session.connect()
    session.close()


def test_server_connection_limit_421_at_welcome_is_too_many_connections(make_server, credentials):
    server = make_server(max_cons_per_ip=1)
    with UploadSession(params_for(server, credentials)), pytest.raises(TooManyConnections, match="421"):
        UploadSession(params_for(server, credentials)).connect()


def test_a_wrong_password_is_a_session_failure_without_the_password(make_server, credentials):
    server = make_server()
    params = params_for(server, credentials, password="wrong-" + credentials.password)
    with pytest.raises(SessionFailure, match="530") as caught:
        UploadSession(params).connect()
    assert params.password not in str(caught.value)
    assert params.password not in repr(caught.value)


def test_nothing_listening_is_a_lost_connection_naming_the_address(credentials):
    params = FtpParams("127.0.0.1", 9, credentials.username, credentials.password, timeout=2)
    with pytest.raises(ConnectionLost, match=r"127\.0\.0\.1:9\b"):
        UploadSession(params).connect()


def test_a_stalled_reply_times_out_and_drops_the_session(make_server, outbox, credentials):
    server = make_server(faults=Faults(stall={"SIZE": 3.0}))
    write(outbox / "a.wav", 10)
    session = UploadSession(params_for(server, credentials, timeout=0.3))
    session.connect()
    with pytest.raises(ConnectionLost):
        session.upload(str(outbox / "a.wav"), "a.wav", 10)
    assert not session.connected


@pytest.mark.parametrize("pipelining", [True, False])
def test_explicit_ftps_uploads_and_reuses_the_tls_session_on_data_connections(
    make_server, tls_files, ftp_root, outbox, credentials, pipelining
):
    faults = Faults()
    server = tls_server(make_server, tls_files, faults=faults)
    data = write(outbox / "a.wav", 300_000)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file, pipelining=pipelining)
    with UploadSession(params) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", len(data))
        assert session.last_data_session_reused is True
        session.upload(str(outbox / "a.wav"), "b.wav", len(data))
        assert session.last_data_session_reused is True
    assert (ftp_root / "upload/a.wav").read_bytes() == data
    assert (ftp_root / "upload/b.wav").read_bytes() == data
    assert [cmd for cmd, _ in faults.journal][:3] == ["AUTH", "USER", "PASS"]


def test_the_tls_context_is_made_once_per_session_and_never_for_plain_ftp(
    make_server, tls_files, credentials, monkeypatch
):
    """Loading the CA certificates costs some 20 ms of CPU: not at every reconnect through an outage."""
    made = []
    monkeypatch.setattr(ftp_connection, "make_context", lambda params: made.append(params) or make_context(params))
    plain = UploadSession(params_for(make_server(), credentials))
    for _ in range(2):
        plain.connect()
    assert plain.client is not None and plain.client.context is None
    plain.close()
    assert made == []
    server = tls_server(make_server, tls_files)
    with UploadSession(params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file)) as secure:
        secure.connect()  # a reconnect
        secure.noop()
    assert len(made) == 1


def test_implicit_ftps_uploads(make_server, tls_files, ftp_root, outbox, credentials):
    server = tls_server(make_server, tls_files, handler=ImplicitTLSHandler)
    data = write(outbox / "a.wav", 70_000)
    params = params_for(server, credentials, tls="implicit", ca_file=tls_files.ca_file)
    with UploadSession(params) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", len(data))
        assert session.last_data_session_reused is True
    assert (ftp_root / "upload/a.wav").read_bytes() == data


def test_a_wrong_ca_fails_clearly_and_uploads_nothing(make_server, tls_files, ftp_root, credentials):
    faults = Faults()
    server = tls_server(make_server, tls_files, faults=faults)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.other_ca_file)
    with pytest.raises(SessionFailure, match="TLS certificate verification failed") as caught:
        UploadSession(params).connect()
    assert f"127.0.0.1:{server.port}" in str(caught.value)
    assert "PASS" not in [cmd for cmd, _ in faults.journal]
    assert list(ftp_root.iterdir()) == []


def test_verify_false_accepts_an_unknown_ca(make_server, tls_files, outbox, ftp_root, credentials):
    server = tls_server(make_server, tls_files)
    write(outbox / "a.wav", 10)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.other_ca_file, verify=False)
    with UploadSession(params) as session:
        session.upload(str(outbox / "a.wav"), "a.wav", 10)
    assert (ftp_root / "upload/a.wav").stat().st_size == 10


def test_plain_ftp_against_a_server_requiring_tls_is_a_session_failure(make_server, tls_files, credentials):
    server = tls_server(make_server, tls_files)
    with pytest.raises(SessionFailure, match="550"):
        UploadSession(params_for(server, credentials)).connect()


# --- a connection opened ahead of its login


def test_a_connection_opened_ahead_sends_nothing_and_logs_in_on_the_same_socket(make_server, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    session = UploadSession(params_for(server, credentials))
    assert session.open_ahead() and not session.connected
    assert faults.journal == []  # connected and welcomed: nothing of the account sent
    opened = session.connection._ahead.sock.getsockname()
    session.connect()
    assert session.client.sock.getsockname() == opened
    assert [cmd for cmd, _ in faults.journal] == ["USER", "PASS", "TYPE", "FEAT"]
    session.close()


def test_a_connection_opened_ahead_that_the_server_timed_out_is_opened_again(make_server, credentials):
    """A server that dropped the waiting connection (421 and hang-up) costs no failed login: a new one is opened."""
    server = make_server(timeout=0.3)  # pyftpdlib's idle timeout: "421 Control connection timed out."
    session = UploadSession(params_for(server, credentials))
    assert session.open_ahead()
    stale = session.connection._ahead
    wait_until(lambda: not still_quiet(stale), timeout=10)
    assert session.connect().startswith("220")
    assert session.client is not stale and session.noop().startswith("200")
    session.close()


def test_closing_drops_a_connection_opened_ahead(make_server, credentials):
    server = make_server()
    session = UploadSession(params_for(server, credentials))
    assert session.open_ahead()
    stale = session.connection._ahead
    session.close()
    assert session.connection._ahead is None and stale.sock is None


def test_opening_ahead_a_port_that_refuses_is_quiet_unless_asked_and_the_connect_says_it(make_server, credentials):
    server = make_server()
    params = params_for(server, credentials)
    server.stop()
    session = UploadSession(params)
    assert session.open_ahead() is False
    with pytest.raises(ConnectionLost):
        session.open_ahead(quiet=False)  # the first session's attempt: said as `connect` says it
    with pytest.raises(ConnectionLost):
        session.connect()


def test_explicit_ftps_opened_ahead_is_secured_before_the_login_and_reads_back_a_manifest(
    make_server, tls_files, ftp_root, outbox, credentials
):
    """AUTH TLS and its handshake happen while opening ahead; the login, the data connections (PROT P) and a
    read-back in the rename's flight go over TLS as usual."""
    faults = Faults()
    server = tls_server(make_server, tls_files, faults=faults)
    data = write(outbox / "a.wav", 3000)
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file)
    session = UploadSession(params)
    session.first_folder("st/2024-05-01/audio")
    assert session.open_ahead(quiet=False)
    assert [cmd for cmd, _ in faults.journal] == ["AUTH"]  # secured, nothing of the account sent
    with session:
        session.upload(str(outbox / "a.wav"), "st/2024-05-01/audio/a.wav", len(data))
        session.put_small("st/2024-05-01/SHA256SUMS", b"manifest\n", then_read=True)
        assert session.get_small("st/2024-05-01/SHA256SUMS") == b"manifest\n"
        assert session.noop().startswith("200")
    assert (ftp_root / "upload/st/2024-05-01/audio/a.wav").read_bytes() == data
    assert [arg for cmd, arg in faults.journal if cmd == "RETR"] == ["/upload/st/2024-05-01/SHA256SUMS"]


def _opened_ahead_then_logged_in(params) -> None:
    """Open ahead (welcome, AUTH TLS, handshake), wait a moment as a worker waiting for the first login does,
    then log in: on the same socket (the server's TLS 1.3 session tickets are not the server speaking)."""
    session = UploadSession(params)
    assert session.open_ahead(quiet=False)
    ahead = session.connection._ahead
    opened = ahead.sock.getsockname()
    looks: list[bool] = []
    wait_until(lambda: looks.append(still_quiet(ahead)) or len(looks) > 5, timeout=5)
    session.connect()
    try:
        assert session.client.sock.getsockname() == opened, (looks, ahead.sock.version())
        assert session.noop().startswith("200")
    finally:
        session.close()


def test_an_explicit_ftps_connection_opened_ahead_is_the_one_logged_in_on(make_server, tls_files, credentials):
    server = tls_server(make_server, tls_files, faults=Faults())
    _opened_ahead_then_logged_in(params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file))


def test_an_explicit_ftps_connection_opened_ahead_to_vsftpd_is_the_one_logged_in_on(vsftpd, tls_files):
    """The same against Debian's vsftpd (ssl_enable, require_ssl_reuse): one that caps connections per address
    counted the dropped connection and answered the next one 421."""
    server = vsftpd(tls="explicit", cert_file=tls_files.cert_file)
    params = FtpParams(
        "127.0.0.1",
        server.port,
        server.username,
        server.password or "anonymous",
        server.remote_root,
        timeout=5,
        tls="explicit",
        ca_file=tls_files.ca_file,
    )
    _opened_ahead_then_logged_in(params)
