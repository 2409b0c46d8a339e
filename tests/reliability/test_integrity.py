"""The server's hash of each delivered file, against ProFTPD with mod_digest (HASH) and pyftpdlib without.

A copy the server hashes differently from the bytes sent is a failed delivery: the local file stays
and is sent again. Without a hash command, sizes are the check, and the log says so once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import threading
from pathlib import Path

import pytest

from pipeline.dev.embedded_server import EmbeddedFtpServer
from tests.e2e.conftest import REMOTE_ROOT, STATION, run_cli, uploader_env
from tests.ftp_proxy import FtpProxy
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files
from tests.reliability.test_real_servers import DAY, _Target, put, real_env, remote
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
        # The HASH rides in the rename's flight: look once the server has answered that flight's RNTO.
        wait_until(lambda: len(proxy.replies("250 Rename")) == len(proxy.commands("RNTO")), timeout=10)
        if not seen:  # between the STOR (and rename) and the first HASH: one byte flips on the server's disk
            data = bytearray(target.read_bytes())
            data[1_000_000] ^= 0x01
            target.write_bytes(bytes(data))
        seen.append((hashlib.sha256(target.read_bytes()).hexdigest(), local.exists()))

    proxy = FtpProxy(server.port, before_command=corrupt_first)
    env = real_env(server, outbox, tmp_path, port=proxy.port, BEEMON_FTP__CONNECTIONS="1")
    run = start_uploader(env, "run", "--stats-interval", "0.2")
    try:
        wait_until(lambda: outbox_files(outbox) == [], timeout=30)
        wait_until(lambda: "(day complete)" in run.output(), timeout=30)
        wait_until(lambda: "verified by hash 1 / by size 0, hash mismatches 1" in run.output(), timeout=10)
        # The day's manifest is read back after "(day complete)" is logged; its journal goes once that matched.
        wait_until(lambda: journals(outbox) == {}, timeout=30)
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
    assert manifest == f"# size {len(content)} video/{local.name}\n{sent}  video/{local.name}\n"
    check = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=day_folder(server.root), capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


# --- SIGKILL at the two steps of a manifest line's life, then a restart


def journals(outbox: Path) -> dict[str, str]:
    folder = outbox / ".beemon" / "manifests"
    return {p.name: p.read_text() for p in folder.glob("*.journal")} if folder.exists() else {}


def kill_then_restart(proftpd, outbox, tmp_path, start_uploader, hold) -> dict[str, str]:
    """Two files up through a proxy that holds back (never lets through) the first command for which
    `hold(line, proxy)` is true; then SIGKILL the uploader and run it again straight to the server.
    Returns the journals the killed run left."""
    server = proftpd(**DIGEST)
    contents = {f"{STATION}@{DAY}@10-00-0{i}.h264": os.urandom(200_000 + i) for i in range(2)}
    for name, content in contents.items():
        put(outbox, name, content)
    # A manifest another run left on the server, naming a file this run never sends: it must survive the merge.
    other = os.urandom(1000)
    (day_folder(server.root) / "audio").mkdir(parents=True)
    (day_folder(server.root) / "audio" / "older.wav").write_bytes(other)
    older_line = f"{hashlib.sha256(other).hexdigest()}  audio/older.wav\n"  # an older version's: no size line
    (day_folder(server.root) / "SHA256SUMS").write_text(older_line)
    released = threading.Event()
    held: list[str] = []

    def hold_back(line: str) -> None:
        if held or hold(line, proxy):
            held.append(line)
            released.wait(60)

    proxy = FtpProxy(server.port, before_command=hold_back)
    env = real_env(server, outbox, tmp_path, port=proxy.port, BEEMON_FTP__CONNECTIONS="1")
    first = start_uploader(env)
    try:
        wait_until(lambda: held, timeout=30)
        first.kill()
    finally:
        released.set()
        proxy.close()
    left = journals(outbox)
    second = start_uploader(real_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1"))
    wait_until(lambda: outbox_files(outbox) == [] and "(day complete)" in second.output(), timeout=30)
    wait_until(lambda: journals(outbox) == {}, timeout=10)
    assert second.stop() == 0
    manifest = (day_folder(server.root) / "SHA256SUMS").read_text()
    expected = older_line + "".join(
        f"# size {len(c)} video/{n}\n{hashlib.sha256(c).hexdigest()}  video/{n}\n" for n, c in sorted(contents.items())
    )
    assert manifest == expected
    check = subprocess.run(
        ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=day_folder(server.root), capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for name, content in contents.items():
        assert (server.root / remote(server, name)).read_bytes() == content
    return left


def test_sigkill_between_a_delivery_and_its_journal_line_ends_with_a_complete_manifest(
    proftpd, outbox, tmp_path, start_uploader
):
    # The second file's HASH is held: the server holds it renamed, its line is not journaled, it is still local.
    def second_hash(line: str, proxy: FtpProxy) -> bool:
        return line.startswith("HASH") and len(proxy.commands("HASH")) == 2

    left = kill_then_restart(proftpd, outbox, tmp_path, start_uploader, second_hash)
    assert [text.count("\n") for text in left.values()] == [1], left


def test_sigkill_between_the_journal_and_the_manifest_upload_ends_with_a_complete_manifest(
    proftpd, outbox, tmp_path, start_uploader
):
    # The manifest's STOR is held: both lines are journaled (fsync'ed), the server's manifest is the old one.
    def manifest_store(line: str, proxy: FtpProxy) -> bool:
        return line.startswith("STOR") and line.endswith(".SHA256SUMS.part")

    left = kill_then_restart(proftpd, outbox, tmp_path, start_uploader, manifest_store)
    assert [text.count("\n") for text in left.values()] == [2], left


def test_verify_names_a_removed_a_truncated_and_a_flipped_byte_file_and_changes_nothing(
    proftpd, outbox, tmp_path, start_uploader
):
    server = proftpd(**DIGEST)
    contents = {f"{STATION}@{DAY}@10-00-0{i}.h264": os.urandom(50_000) for i in range(4)}
    for name, content in contents.items():
        put(outbox, name, content)
    env = real_env(server, outbox, tmp_path)
    run = start_uploader(env)
    wait_until(lambda: "(day complete)" in run.output(), timeout=30)
    assert run.stop() == 0
    clean = run_cli(env, "verify", "--date", DAY)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines()[-1].endswith(
        "4 file(s) present, sizes of 4 compared, 4 compared by the server's SHA-256: no problem(s)"
    )
    removed, truncated, flipped, _ = (server.root / remote(server, name) for name in sorted(contents))
    removed.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-1])
    data = bytearray(flipped.read_bytes())
    data[123] ^= 0x80
    flipped.write_bytes(bytes(data))
    (removed.parent / "stray.h264").write_bytes(b"not uploaded by this station")
    before = server.files()
    found = run_cli(env, "verify", "--date", DAY, "--station", STATION)
    assert found.returncode == 1, found.stdout + found.stderr
    lines = found.stdout.splitlines()
    day = f"{REMOTE_ROOT}/{STATION}/{DAY}/video"
    assert lines[0] == f"missing: {day}/{removed.name} (named in SHA256SUMS, not on the server)"
    # the size tells the truncated one: no HASH asked for it (one problem, one line)
    assert lines[1] == f"size mismatch: {day}/{truncated.name}: the server holds 49999 B, the manifest says 50000 B"
    assert lines[2].startswith(f"hash mismatch: {day}/{flipped.name} (50000 B)")
    assert lines[3] == f"not in the manifest: {day}/stray.h264 (28 B)"
    assert lines[4].endswith(
        "3 file(s) present, sizes of 3 compared, 2 compared by the server's SHA-256: 4 problem(s)"
    ), lines
    assert len(lines) == 5
    assert server.files() == before  # read-only


# --- pyftpdlib: without a hash command (sizes, said once), and the embedded server's own HASH


@pytest.mark.parametrize("hash_command", [False, True], ids=["no-hash-command", "embedded-hash"])
def test_pyftpdlib_check_is_said_once_and_the_manifest_still_goes_up(hash_command, outbox, tmp_path, start_uploader):
    root = tmp_path / "ftp-root"
    password = secrets.token_urlsafe(12)
    server = EmbeddedFtpServer(root, "station", password, hash_command=hash_command).start()
    try:
        contents = {f"{STATION}@{DAY}@10-00-0{i}.h264": os.urandom(10_000 + i) for i in range(6)}
        for name, content in contents.items():
            put(outbox, name, content)
        target = _Target(server.port, "station", password)
        run = start_uploader(uploader_env(target, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="3"))  # type: ignore[arg-type]
        wait_until(lambda: outbox_files(outbox) == [] and "(day complete)" in run.output(), timeout=30)
        assert run.stop() == 0
    finally:
        server.stop()
    output = run.output()
    said = [line for line in output.splitlines() if "are checked by" in line]
    expected = "the server's SHA-256 of each renamed file (HASH)" if hash_command else "the size of each renamed file"
    assert len(said) == 1 and expected in said[0], output  # three sessions, one line
    assert "WARNING" not in output
    manifest = (day_folder(root) / "SHA256SUMS").read_text()
    assert manifest == "".join(
        f"# size {len(c)} video/{n}\n{hashlib.sha256(c).hexdigest()}  video/{n}\n" for n, c in sorted(contents.items())
    )
