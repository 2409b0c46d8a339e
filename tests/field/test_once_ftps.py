"""`run --once` over explicit FTPS to a vsftpd that allows the station two connections per address.

Sessions 2-4 open their connection ahead (welcome, AUTH TLS) while the first logs in, and log in on it
while it is quiet. Under TLS 1.3 the server's session tickets arrive right after the handshake and
made it look spoken to: it was dropped and another opened at once, which vsftpd (`max_per_ip`, the
dropped one still counted) answered 421: a WARNING, the pool shrunk to one session (about half the
runs, found in review). Now both sessions deliver, and no 421 is met.
"""

from __future__ import annotations

from types import SimpleNamespace

from tests.e2e.conftest import run_cli, uploader_env
from tests.field.conftest import recording
from tests.reliability.conftest import outbox_files

DAY = "2024-05-02"


def test_once_over_ftps_to_a_server_allowing_two_connections_per_address_uses_both(vsftpd, tls_files, outbox, tmp_path):
    server = vsftpd(tls="explicit", cert_file=tls_files.cert_file, max_per_ip="2")
    files = [recording(outbox, "audio", DAY, f"10-00-{i:02d}", 2_000 + i, old=True) for i in range(40)]
    contents = {path.name: path.read_bytes() for path in files}
    target = SimpleNamespace(
        server=SimpleNamespace(port=server.port), username=server.username, password=server.password or "anonymous"
    )
    env = uploader_env(
        target,
        outbox,
        tmp_path,
        BEEMON_FTP__REMOTE_ROOT=server.remote_root,
        BEEMON_FTP__TLS="explicit",
        BEEMON_FTP__CA_FILE=tls_files.ca_file,
        BEEMON_FTP__CONNECTIONS="2",  # two sessions: the station's whole share of this server
    )
    done = run_cli(env, "run", "--once", "--max-retries", "2", timeout=90)
    assert done.returncode == 0, done.stderr
    assert "421" not in done.stderr, done.stderr
    landed = {path.name: path.read_bytes() for path in server.root.rglob("*.wav")}
    assert landed == contents
    assert outbox_files(outbox) == []
