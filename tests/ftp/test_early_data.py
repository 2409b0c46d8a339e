"""A small file's bytes sent before the 150 (plain FTP): refusals, cuts and a 421 still end right.

Against pyftpdlib (fault-injecting handler), vsftpd and ProFTPD (Debian's, on loopback; a cut comes
from `FtpProxy` in front of them). Each file follows one whose rename flight asked for its data
port, as in the sink: its data connection is opened on that port and filled before the server has
even read the STOR. The outcome must be the reply's: the right failure kind, the session in step
(or reconnected), nothing under the final name but whole files, and the next file its own bytes.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.ftp.early import EARLY_SEND_MAX
from pipeline.ftp.errors import ConnectionLost, PermanentFailure, TransientFailure
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadProgress, UploadSession
from tests.ftp.support import tls_server
from tests.ftp_faults import Faults
from tests.ftp_proxy import FtpProxy
from tests.helpers import params_for, write
from tests.servers import ServerFiles

SMALL = 40_000
KINDS = ["pyftpdlib", "vsftpd", "proftpd"]
#: How each server is told to refuse a name with "denied" in it, and the reply code it then sends.
DENY = {"vsftpd": ({"deny_file": "{*denied*}"}, 550), "proftpd": ({"PathDenyFilter": '"denied"'}, 550)}


@dataclass
class Target:
    params: FtpParams
    folder: Path  # the remote root on this machine's disk
    faults: Faults | None = None


def real(server: ServerFiles, port: int | None = None) -> Target:
    params = FtpParams(
        "127.0.0.1", port or server.port, server.username, server.password or "anonymous", server.remote_root, timeout=5
    )
    return Target(params, server.root)


def target(kind: str, request: pytest.FixtureRequest, faults: Faults, **real_options: str) -> Target:
    if kind == "pyftpdlib":
        server = request.getfixturevalue("make_server")(faults=faults)
        params = params_for(server, request.getfixturevalue("credentials"))
        return Target(params, request.getfixturevalue("ftp_root") / "upload", faults)
    return real(request.getfixturevalue(kind)(**real_options))


def first_then(session: UploadSession, outbox: Path) -> bytes:
    """Upload a first file that asks the next one's data port in its rename flight; returns its bytes."""
    data = write(outbox / "first.wav", 1000)
    session.upload(str(outbox / "first.wav"), "first.wav", len(data), next_upload=lambda: True)
    return data


def test_small_files_go_before_the_150():
    assert SMALL <= EARLY_SEND_MAX


@pytest.mark.parametrize("kind", KINDS)
def test_a_refused_stor_is_its_reply_and_the_next_file_gets_its_own_bytes(kind, request, outbox):
    options, code = DENY.get(kind, ({}, 550))
    where = target(kind, request, Faults(deny_stor=("denied",)), **options)
    denied = write(outbox / "denied.wav", SMALL)
    progress = UploadProgress()
    with UploadSession(where.params) as session:
        first_then(session, outbox)
        with pytest.raises(PermanentFailure) as refused:
            session.upload(str(outbox / "denied.wav"), "denied.wav", len(denied), progress=progress)
        assert refused.value.command == "STOR" and refused.value.reply.startswith(str(code)), refused.value
        assert session.connected and progress == UploadProgress(stored=False)
        after = write(outbox / "after.wav", SMALL + 1)
        report = session.upload(str(outbox / "after.wav"), "after.wav", len(after))
        assert report.verified is True
    assert sorted(p.name for p in where.folder.iterdir()) == ["after.wav", "first.wav"]
    assert (where.folder / "after.wav").read_bytes() == after
    assert (outbox / "denied.wav").read_bytes() == denied


@pytest.mark.parametrize("reply", ["452 No space left on device.", "553 Quota exceeded."])
def test_a_full_disk_or_a_quota_on_pyftpdlib_is_its_reply(request, outbox, reply):
    faults = Faults()
    where = target("pyftpdlib", request, faults)
    data = write(outbox / "a.wav", SMALL)
    with UploadSession(where.params) as session:
        first_then(session, outbox)
        faults.stor_replies.append(reply)
        with pytest.raises(TransientFailure if reply[0] == "4" else PermanentFailure, match=reply[:3]) as caught:
            session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
        assert caught.value.session_usable and session.connected
        session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
    assert (where.folder / "a.wav").read_bytes() == data


@pytest.mark.parametrize("kind", KINDS)
def test_a_data_connection_cut_midway_never_leaves_a_short_final_file(kind, request, outbox):
    faults = Faults(cut_after_bytes=10_000, cuts=1)
    if kind == "pyftpdlib":
        where = target(kind, request, faults)
    else:
        server = request.getfixturevalue(kind)()
        proxy = FtpProxy(server.port, cut_after_bytes=10_000, cuts=1)
        request.addfinalizer(proxy.close)
        where = real(server, proxy.port)
    data = write(outbox / "a.wav", SMALL)
    final = where.folder / "a.wav"
    with UploadSession(where.params) as session:
        first_then(session, outbox)
        with pytest.raises(TransientFailure) as cut:
            session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
        # The server may take the cut for the end of the data (226): then the size check catches it.
        assert not final.exists() or cut.value.command == "SIZE", cut.value
        if not session.connected:
            session.connect()
        report = session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
    assert report.verified is True and final.read_bytes() == data
    assert sorted(p.name for p in where.folder.iterdir()) == ["a.wav", "first.wav"]


def test_a_421_midway_is_a_lost_connection_and_the_file_goes_again(request, outbox):
    faults = Faults(cut_after_bytes=10_000, cuts=1, cut_reply="421 Service not available, closing control connection.")
    where = target("pyftpdlib", request, faults)
    data = write(outbox / "a.wav", SMALL)
    with UploadSession(where.params) as session:
        first_then(session, outbox)
        with pytest.raises(ConnectionLost):
            session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
        assert not session.connected and not (where.folder / "a.wav").exists()
        session.connect()
        session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
    assert (where.folder / "a.wav").read_bytes() == data


def test_over_ftps_a_refused_stor_ends_at_once_and_the_session_carries_on(
    make_server, tls_files, ftp_root, credentials, outbox
):
    # Under TLS the data waits for the 150: a handshake begun before it would wait on a refused STOR.
    server = tls_server(make_server, tls_files, faults=Faults(deny_stor=("denied",)))
    params = params_for(server, credentials, tls="explicit", ca_file=tls_files.ca_file)
    write(outbox / "denied.wav", SMALL)
    with UploadSession(params) as session:
        first_then(session, outbox)
        started = time.monotonic()
        with pytest.raises(PermanentFailure, match="550"):
            session.upload(str(outbox / "denied.wav"), "denied.wav", SMALL)
        assert time.monotonic() - started < params.timeout / 2
        data = write(outbox / "after.wav", SMALL)
        session.upload(str(outbox / "after.wav"), "after.wav", SMALL)
    assert (ftp_root / "upload/after.wav").read_bytes() == data


@pytest.mark.parametrize(("stor", "expected"), [("550 Permission denied.", PermanentFailure), (None, ConnectionLost)])
def test_a_data_port_closed_before_the_client_reaches_it_is_the_stor_replys_outcome(request, outbox, stor, expected):
    # ProFTPD closes the port of a STOR it refused, sometimes before the client's connect arrives.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    refuse = {"EPSV": f"229 Entering Extended Passive Mode (|||{dead}|)"}
    if stor is not None:
        refuse["STOR"] = stor
    where = target("pyftpdlib", request, Faults(refuse=refuse))
    write(outbox / "a.wav", SMALL)
    with UploadSession(where.params) as session:
        with pytest.raises(expected) as caught:
            session.upload(str(outbox / "a.wav"), "a.wav", SMALL)
        assert caught.value.command == "STOR"
        # A refusal keeps the session in step; after a 150 the connection is dropped.
        assert session.connected is (expected is PermanentFailure)
        if session.connected:
            assert session.noop().startswith("200")
    assert not (where.folder / "a.wav").exists()
