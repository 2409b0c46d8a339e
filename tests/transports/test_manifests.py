"""The per-day SHA256SUMS and `verify` on SFTP and S3, with the real `beemon-uploader` against sshd and SeaweedFS.

A station's `run --once` delivers a day's recordings (one of them above S3's multipart threshold);
the day's manifest on the server names each with its size and SHA-256 (on the sshd's folder
`sha256sum -c --strict` checks them, on S3 the object is read); `verify` then finds nothing wrong
(exit 0), and after one delivered file is removed and another truncated on the server (the multipart
one, which S3 cannot hash either) it names both, the truncated one with both sizes, and exits 1,
changing nothing.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli
from tests.transports.conftest import STATION, Target, outbox_files, recording, remote_of

DAY = "2024-05-02"


def test_run_once_puts_the_days_sha256sums_and_verify_finds_a_removed_and_a_truncated_file(
    target: Target, outbox: Path
) -> None:
    written = [recording(outbox, "audio", DAY, f"10-0{i}-00", 200_000) for i in range(2)]
    written.append(recording(outbox, "video", DAY, "11-00-00", 6_000_000))  # S3: a multipart upload
    hashes = {f"{p.parent.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in written}
    sizes = {f"{p.parent.parent.name}/{p.name}": p.stat().st_size for p in written}
    removed, truncated = remote_of(written[0]), remote_of(written[2])

    done = run_cli(target.env(), "run", "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    assert outbox_files(outbox) == []
    manifest = target.files(manifests=True)[f"{STATION}/{DAY}/SHA256SUMS"].decode()
    assert manifest == "".join(f"# size {sizes[name]} {name}\n{hashes[name]}  {name}\n" for name in sorted(hashes))
    if target.kind == "sftp":
        day_folder = target.server.root / "bees" / STATION / DAY
        checked = subprocess.run(
            ["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=day_folder, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.count(": OK") == 3

    clean = run_cli(target.env(), "verify", "--date", DAY)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    contents = {
        "sftp": "contents not compared (the server offers no SHA-256 command; run sha256sum -c SHA256SUMS there)",
        "s3": "2 compared by the server's SHA-256, the others' contents not compared",  # multipart: composite
    }[target.kind]
    summary = f"3 file(s) present, sizes of 3 compared, {contents}: no problem(s)"
    assert clean.stdout.strip().splitlines()[-1].endswith(summary), clean.stdout

    target.remove(removed)
    target.truncate(truncated, 5_999_999)
    before = target.files(manifests=True)
    found = run_cli(target.env(), "verify", "--date", DAY)
    assert found.returncode == 1, found.stdout + found.stderr
    lines = found.stdout.strip().splitlines()
    day = f"{target.env().get('BEEMON_SFTP__REMOTE_ROOT', '/lab')}/{STATION}/{DAY}"
    assert lines[0] == f"missing: {day}/{removed.split('/', 2)[2]} (named in SHA256SUMS, not on the server)", lines
    assert lines[1] == (
        f"size mismatch: {day}/{truncated.split('/', 2)[2]}: the server holds 5999999 B, the manifest says 6000000 B"
    ), lines
    assert lines[-1].endswith(": 2 problem(s)") and len(lines) == 3, lines
    assert target.files(manifests=True) == before  # verify changes nothing


@pytest.mark.parametrize("target", ["sftp"], indirect=True)  # renames are an SFTP server's to refuse; S3 has none
def test_sftp_without_renames_run_once_stores_files_and_the_days_manifest_under_their_names(
    target: Target, outbox: Path
) -> None:
    """A server whose SFTP refuses renames (a drop box that takes new files only), with `upload.atomic_rename =
    false` as the docs say for one: the recordings and the day's SHA256SUMS both go up under their own names,
    the journal goes, and `run --once` exits 0 (the manifest used to go to a temporary name and be renamed, which
    failed on every try: exit 1, the journal kept for ever)."""
    written = [recording(outbox, "audio", DAY, f"10-0{i}-00", 50_000) for i in range(2)]
    sent = {remote_of(p): p.read_bytes() for p in written}
    hashes = {f"{p.parent.parent.name}/{p.name}": hashlib.sha256(p.read_bytes()).hexdigest() for p in written}
    env = target.env(BEEMON_SFTP__PORT=str(target.server.no_rename_port), BEEMON_UPLOAD__ATOMIC_RENAME="false")

    done = run_cli(env, "run", "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    assert outbox_files(outbox) == []
    assert target.files() == sent  # nothing under a temporary name either
    held = target.files(manifests=True)
    manifest = held[f"{STATION}/{DAY}/SHA256SUMS"].decode()
    assert manifest == "".join(f"# size 50000 {name}\n{hashes[name]}  {name}\n" for name in sorted(hashes))
    assert set(held) == {*sent, f"{STATION}/{DAY}/SHA256SUMS"}, held
    journals = [p for p in (outbox / ".beemon").rglob("*") if p.is_file() and p.name != "lock"]
    assert journals == [], journals  # the day's journal went with its manifest verified
