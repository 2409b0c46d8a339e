"""`verify` against a server that cannot hash (pyftpdlib without HASH): the sizes in SHA256SUMS tell a truncated file.

A station's `run --once` sends a past day into a folder whose SHA256SUMS an older version left (no size
lines, a comment of the lab's, a file the station no longer holds); another day has only such an old
manifest. The merged manifest keeps every old line as it was and gives each new entry its size line;
`sha256sum -c --strict` on the server accepts it; `verify` finds nothing wrong (the old entries' sizes
are unknown, not problems), then names a file truncated on the server with both sizes and exits 1,
changing nothing. vsftpd has neither a hash command nor MLSD: `verify` lists its folders with NLST
and SIZE, and tells a truncated file and a stray one there too.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
from pathlib import Path

from pipeline.dev.embedded_server import EmbeddedFtpServer
from tests.e2e.conftest import REMOTE_ROOT, STATION, run_cli, uploader_env
from tests.reliability.conftest import outbox_files
from tests.reliability.test_real_servers import DAY, _Target, put, real_env

OLDER_DAY = "2022-07-18"
NO_HASH = "contents not compared (the server offers no SHA-256 command; run sha256sum -c SHA256SUMS there)"


def old_manifest_day(root: Path, date: str, files: dict[str, bytes], comment: str) -> str:
    """A day folder on the server as an older version left it: the files, and a SHA256SUMS without sizes."""
    folder = root / REMOTE_ROOT.lstrip("/") / STATION / date
    lines = [comment]
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
        lines.append(f"{hashlib.sha256(content).hexdigest()}  {name}")
    text = "".join(line + "\n" for line in lines)
    (folder / "SHA256SUMS").write_text(text)
    return text


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pyftpdlib_without_hash_verify_names_a_truncated_file_with_both_sizes(outbox, tmp_path):
    root = tmp_path / "ftp-root"
    password = secrets.token_urlsafe(12)
    server = EmbeddedFtpServer(root, "station", password, hash_command=False).start()
    try:
        old = old_manifest_day(root, DAY, {"audio/gone-from-the-pi.wav": os.urandom(700)}, "# copied by the lab")
        old_manifest_day(root, OLDER_DAY, {"video/first.h264": os.urandom(900)}, "# an older uploader's day")
        contents = {f"{STATION}@{DAY}@10-00-0{i}.h264": os.urandom(40_000 + i) for i in range(3)}
        for name, content in contents.items():
            put(outbox, name, content)
        env = uploader_env(_Target(server.port, "station", password), outbox, tmp_path)  # type: ignore[arg-type]
        done = run_cli(env, "run", "--once")
        assert done.returncode == 0, done.stderr[-3000:]
        assert outbox_files(outbox) == []

        day = root / REMOTE_ROOT.lstrip("/") / STATION / DAY
        assert (day / "SHA256SUMS").read_text() == old + "".join(
            f"# size {len(c)} video/{n}\n{hashlib.sha256(c).hexdigest()}  video/{n}\n"
            for n, c in sorted(contents.items())
        )
        check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=day, capture_output=True, text=True)
        assert (check.returncode, check.stdout.count(": OK"), check.stderr) == (0, 4, ""), check.stdout + check.stderr

        clean = run_cli(env, "verify")  # every day of the station: the old-format one too
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert clean.stdout.splitlines() == [
            f"verify: 2 day(s) of {STATION}, 5 file(s) present, sizes of 3 compared,"
            f" 2 unknown (no size line in SHA256SUMS), {NO_HASH}: no problem(s)"
        ]

        cut = sorted(contents)[1]
        (day / "video" / cut).write_bytes(contents[cut][:-10])
        before = snapshot(root)
        found = run_cli(env, "verify", "--date", DAY)
        assert found.returncode == 1, found.stdout + found.stderr
        assert found.stdout.splitlines() == [
            f"size mismatch: {REMOTE_ROOT}/{STATION}/{DAY}/video/{cut}: the server holds 39991 B,"
            " the manifest says 40001 B",
            f"verify: 1 day(s) of {STATION}, 4 file(s) present, sizes of 3 compared,"
            f" 1 unknown (no size line in SHA256SUMS), {NO_HASH}: 1 problem(s)",
        ]
        assert snapshot(root) == before  # read-only
    finally:
        server.stop()


def test_vsftpd_without_mlsd_verify_lists_by_nlst_and_names_a_truncated_and_a_stray_file(vsftpd, outbox, tmp_path):
    server = vsftpd()
    contents = {f"{STATION}@{DAY}@11-00-0{i}.h264": os.urandom(30_000 + i) for i in range(2)}
    for name, content in contents.items():
        put(outbox, name, content)
    remote_root = f"{server.remote_root}/data"
    env = real_env(server, outbox, tmp_path, BEEMON_FTP__REMOTE_ROOT=remote_root)
    done = run_cli(env, "run", "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    clean = run_cli(env, "verify", "--date", DAY)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert clean.stdout.splitlines() == [
        f"verify: 1 day(s) of {STATION}, 2 file(s) present, sizes of 2 compared, {NO_HASH}: no problem(s)"
    ]
    videos = server.root / "data" / STATION / DAY / "video"
    cut = sorted(contents)[0]
    (videos / cut).write_bytes(contents[cut][:1000])
    (videos / "stray.h264").write_bytes(b"not from this station")
    before = snapshot(server.root)
    found = run_cli(env, "verify", "--date", DAY)
    assert found.returncode == 1, found.stdout + found.stderr
    day = f"{remote_root}/{STATION}/{DAY}/video"
    assert found.stdout.splitlines() == [
        f"size mismatch: {day}/{cut}: the server holds 1000 B, the manifest says 30000 B",
        f"not in the manifest: {day}/stray.h264 (21 B)",
        f"verify: 1 day(s) of {STATION}, 2 file(s) present, sizes of 2 compared, {NO_HASH}: 2 problem(s)",
    ]
    assert snapshot(server.root) == before  # read-only
