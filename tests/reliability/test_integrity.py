"""The server's hash of each delivered file, against ProFTPD with mod_digest (HASH) and pyftpdlib without.

A copy the server hashes differently from the bytes sent is a failed delivery: the local file stays
and is sent again. Without a hash command, sizes are the check, and the log says so once.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.e2e.conftest import REMOTE_ROOT, STATION
from tests.ftp_proxy import FtpProxy
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files
from tests.reliability.test_real_servers import DAY, put, real_env, remote
from tests.servers import DIGEST


def day_folder(root: Path) -> Path:
    return root / REMOTE_ROOT.lstrip("/") / STATION / DAY


def test_a_copy_corrupted_on_the_server_before_its_hash_is_sent_again_and_never_deleted_first(
    proftpd, outbox, tmp_path, start_uploader
):
    server = proftpd(**DIGEST)
    content = os.urandom(3_000_000)
    local = put(outbox, f"{STATION}@{DAY}@10-00-00.h264", content)
    target = server.root / remote(server, local.name)
    seen: list[tuple[str, bool]] = []  # (the file's SHA-256 on the server, the local file still there) at each HASH

    def corrupt_first(line: str) -> None:
        if not line.startswith("HASH ") or not line.endswith(local.name):
            return
        if not seen:  # between the STOR (and rename) and the first HASH: one byte flips on the server's disk
            data = bytearray(target.read_bytes())
            data[1_000_000] ^= 0x01
            target.write_bytes(bytes(data))
        seen.append((hashlib.sha256(target.read_bytes()).hexdigest(), local.exists()))

    proxy = FtpProxy(server.port, before_command=corrupt_first)
    run = start_uploader(real_env(server, outbox, tmp_path, port=proxy.port, BEEMON_FTP__CONNECTIONS="1"))
    try:
        wait_until(lambda: outbox_files(outbox) == [], timeout=30)
        wait_until(lambda: "(day complete)" in run.output(), timeout=30)
    finally:
        proxy.close()
    assert run.stop() == 0
    sent = hashlib.sha256(content).hexdigest()
    assert target.read_bytes() == content
    assert len(seen) == 2 and seen[0][0] != sent and seen[1][0] == sent, seen
    assert seen[0][1] and seen[1][1], "the local file was removed before its copy was verified"
    output = run.output()
    warnings = [line for line in output.splitlines() if "WARNING" in line]
    assert len(warnings) == 1, output
    assert "hash mismatch" in warnings[0] and sent in warnings[0] and seen[0][0] in warnings[0]
    assert "checked by the server's SHA-256 of each renamed file (HASH)" in output
    # The day's manifest names the file, and standard tools agree with it on the server.
    manifest = (day_folder(server.root) / "SHA256SUMS").read_text()
    assert manifest == f"{sent}  video/{local.name}\n"
    check = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"], cwd=day_folder(server.root), capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
