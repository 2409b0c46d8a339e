"""Faults seen against real servers (ProFTPD, vsftpd from Debian), run against them on loopback.

The servers come from `tests.servers`; a cut in the middle of a transfer comes from the
`FtpProxy` in front of them, since a real server cannot be told to cut.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.e2e.conftest import REMOTE_ROOT, STATION, uploader_env
from tests.ftp_proxy import FtpProxy
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files
from tests.servers import ServerFiles

DAY = "2022-07-19"
OLD = 1_600_000_000


class _Target:
    """What `uploader_env` needs to aim at a server: its port and account."""

    def __init__(self, port: int, username: str, password: str) -> None:
        self.server = type("Port", (), {"port": port})()
        self.username, self.password = username, password


def real_env(
    server: ServerFiles, outbox: Path, tmp_path: Path, port: int | None = None, **overrides: str
) -> dict[str, str]:
    """Settings aimed at a real server (or at `port`, a proxy in front of it)."""
    target = _Target(port or server.port, server.username, server.password or "anonymous")
    return uploader_env(target, outbox, tmp_path, **overrides)  # type: ignore[arg-type]


def remote(server: ServerFiles, name: str, sensor: str = "video") -> str:
    """Where a file of the station lands, relative to the server's upload folder."""
    return f"{REMOTE_ROOT.lstrip('/')}/{STATION}/{DAY}/{sensor}/{name}"


def put(outbox: Path, name: str, content: bytes, sensor: str = "video") -> Path:
    path = outbox / sensor / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, (OLD, OLD))
    return path


def test_proftpd_refusing_a_resume_gets_the_whole_file_and_is_not_asked_again(
    proftpd, outbox, tmp_path, start_uploader
):
    """ProFTPD (Debian defaults) answers REST + STOR with 451 Append/Restart not permitted."""
    server = proftpd()
    proxy = FtpProxy(server.port, cut_after_bytes=1_000_000, cuts=2)
    contents = {f"{STATION}@{DAY}@10-00-0{i}.h264": os.urandom(16_000_000) for i in range(2)}
    for name, content in contents.items():
        put(outbox, name, content)
    env = real_env(server, outbox, tmp_path, port=proxy.port, BEEMON_FTP__CONNECTIONS="1")
    run = start_uploader(env)
    try:
        wait_until(lambda: outbox_files(outbox) == [], timeout=30)
    finally:
        proxy.close()
    assert run.stop() == 0
    files = server.files()
    for name, content in contents.items():
        assert files[remote(server, name)] == content
    # Both transfers were cut; the first resume was refused, the second was never asked for.
    assert len([line for line in proxy.journal if line.startswith("! cut")]) == 2, proxy.journal
    assert len(proxy.commands("REST")) == 1, "\n".join(proxy.journal) + run.output()
    assert [reply for reply in proxy.replies("451") if "Append/Restart not permitted" in reply], proxy.journal
    output = run.output()
    assert "Traceback" not in output
    assert output.count("refuses to resume uploads") == 1, output
