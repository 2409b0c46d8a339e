"""Shared fixtures: a real FTP(S) server on loopback, an outbox, test certificates, and `wait_until`.

Plain helpers (no fixtures) are in tests/helpers.py.

Tests wait on conditions with deadlines (never long sleeps), so the suite stays fast and honest.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyftpdlib.handlers import FTPHandler

from pipeline.dev.embedded_server import EmbeddedFtpServer
from tests.ftp_faults import Faults, FaultyHandler
from tests.helpers import Credentials, wait_until
from tests.servers import proftpd, vsftpd

__all__ = ["proftpd", "vsftpd"]  # fixtures of real servers (ProFTPD, vsftpd) for every test package


@pytest.fixture(name="wait_until")
def wait_until_fixture() -> Callable[..., object]:
    return wait_until


@pytest.fixture
def credentials() -> Credentials:
    """A random account per test, so a password found anywhere in output can only come from the code."""
    return Credentials(f"user{secrets.token_hex(3)}", f"pw-{secrets.token_urlsafe(12)}")


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox"
    path.mkdir()
    return path


@pytest.fixture
def ftp_root(tmp_path: Path) -> Path:
    path = tmp_path / "ftp-root"
    path.mkdir()
    return path


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str
    cert_file: str
    other_ca_file: str


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA with a certificate for 127.0.0.1/localhost, and an unrelated CA (the "wrong" one)."""
    trustme = pytest.importorskip("trustme")
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(folder / "server.pem"))
    trustme.CA().cert_pem.write_to_path(str(folder / "other-ca.pem"))
    return TlsFiles(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "other-ca.pem"))


ServerFactory = Callable[..., EmbeddedFtpServer]


@pytest.fixture
def make_server(ftp_root: Path, credentials: Credentials) -> Iterator[ServerFactory]:
    """Start loopback servers on `ftp_root` for this test's account; all are stopped at teardown.

    `make_server(handler_class=FaultyHandler, faults=Faults(...), port=..., hash_command=False, **handler_attributes)`.
    """
    started: list[EmbeddedFtpServer] = []

    def factory(
        handler_class: type[FTPHandler] = FaultyHandler,
        *,
        faults: Faults | None = None,
        port: int = 0,
        max_cons_per_ip: int = 0,
        hash_command: bool = False,
        **attributes: object,
    ) -> EmbeddedFtpServer:
        attributes.setdefault("faults", faults if faults is not None else Faults())
        attributes.setdefault("auth_failed_timeout", 0)
        server = EmbeddedFtpServer(
            ftp_root,
            credentials.username,
            credentials.password,
            port=port,
            handler_class=handler_class,
            handler_attributes=attributes,
            max_cons_per_ip=max_cons_per_ip,
            hash_command=hash_command,
        )
        started.append(server.start())
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
def ftp_server(make_server: ServerFactory) -> EmbeddedFtpServer:
    """A well-behaved plain-FTP server (a `FaultyHandler` with no faults, so it keeps a journal)."""
    return make_server()
