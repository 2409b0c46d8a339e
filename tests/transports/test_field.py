"""A station delivering to SFTP and to S3, run as the real `beemon-uploader` process against real servers.

Each scenario runs for both kinds (sshd and SeaweedFS on loopback): what arrives is byte-identical
under its final name exactly once, a cut transfer never shows under a final name and is finished by
the next run, an outage is waited out, a refused login or write loses nothing and says what to check
without the secret, and a fresh recording overtakes a backlog.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from tests.e2e.conftest import cli, run_cli
from tests.transports.conftest import Target, outbox_files, recording, remote_of, wait_until

DAY, OLD_DAY = "2024-05-02", "2024-05-01"


def start(env: dict[str, str], tmp_path: Path, name: str = "run") -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(cli("run"), env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    return process, log


def arrived(target: Target, remote: str, content: bytes) -> bool:
    """Whether `remote` holds `content`; False while a restarted server still answers errors (SeaweedFS's
    volumes register a moment after its S3 port answers)."""
    try:
        return target.files().get(remote) == content
    except Exception:
        return False


def stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    return process.wait(30)


def test_run_once_and_check_deliver_byte_identical(target: Target, outbox: Path) -> None:
    """Small files and one over the multipart threshold (S3: 5 MiB) arrive whole, once; `check` walks every step."""
    written = [recording(outbox, "audio", DAY, f"10-0{i}-00", 300_000) for i in range(3)]
    written.append(recording(outbox, "video", DAY, "11-00-00", 6_000_000))
    contents = {remote_of(p): p.read_bytes() for p in written}
    done = run_cli(target.env(), "run", "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    assert target.files() == contents
    assert outbox_files(outbox) == []
    assert target.incomplete() == []
    checked = run_cli(target.env(), "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    steps = [line.split(":")[0] for line in checked.stdout.splitlines()]
    expected = ["host key", "login"] if target.kind == "sftp" else ["credentials"]
    assert steps == ["settings", "resolve", "connect", *expected, "write", "verify", "remove"]
    assert target.files() == contents  # the probe is gone again


def test_wrong_credentials_exit_1_with_the_check_and_no_secret(target: Target, outbox: Path) -> None:
    recording(outbox, "audio", DAY, "10-00-00", 1000)
    env = target.wrong_credentials()
    secret = env.pop("secret")
    once = run_cli(env, "run", "--once")
    assert once.returncode == 1
    words = "sftp.username" if target.kind == "sftp" else "s3.access_key_id"
    assert words in once.stderr, once.stderr[-2000:]
    checked = run_cli(env, "check")
    assert checked.returncode == 1
    assert checked.stdout.strip().splitlines()[-1].startswith(("login: failed", "credentials: failed"))
    for text in (once.stdout, once.stderr, checked.stdout, checked.stderr):
        assert secret not in text
    assert len(outbox_files(outbox)) == 1 and target.files() == {}


def test_unknown_host_key_says_how_to_add_it(tmp_path: Path, outbox: Path) -> None:
    from tests.transports.conftest import _make

    for target in _make("sftp", tmp_path, outbox):
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        recording(outbox, "audio", DAY, "10-00-00", 1000)
        checked = run_cli(target.env(BEEMON_SFTP__KNOWN_HOSTS=str(empty)), "check")
        assert checked.returncode == 1
        last = checked.stdout.strip().splitlines()[-1]
        assert (
            last.startswith("host key: failed") and f"ssh-keyscan -p {target.server.port} 127.0.0.1 >> {empty}" in last
        )
        once = run_cli(target.env(BEEMON_SFTP__KNOWN_HOSTS=str(empty)), "run", "--once")
        assert once.returncode == 1 and "ssh-keyscan" in once.stderr
        assert target.files() == {}


def test_refused_write_keeps_the_files(target: Target, outbox: Path) -> None:
    """A read-only account (internal-sftp -R; an S3 key with Read and List only): parked, nothing lost."""
    written = [recording(outbox, "audio", DAY, f"10-0{i}-00", 5000) for i in range(2)]
    once = run_cli(target.read_only(), "run", "--once", timeout=90)
    assert once.returncode == 1, once.stderr[-2000:]
    assert outbox_files(outbox) == sorted(written)
    assert target.files() == {}
    assert "denied" in once.stderr.lower()


def test_sigkill_during_a_transfer_then_the_next_run_finishes(target: Target, outbox: Path, tmp_path: Path) -> None:
    """Killed mid-transfer (bandwidth capped): nothing under the final name; the next run delivers it whole."""
    big = recording(outbox, "video", DAY, "11-00-00", 6_000_000)
    content = big.read_bytes()
    process, log = start(target.env(BEEMON_UPLOAD__BANDWIDTH_LIMIT_KBPS="8000"), tmp_path)
    try:
        wait_until(lambda: target.incomplete(), timeout=30)
        time.sleep(1.0)  # some of it sent
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    assert remote_of(big) not in target.files(), log.read_text()[-2000:]
    assert big.exists()
    done = run_cli(target.env(), "run", "--once", timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert target.files() == {remote_of(big): content}
    assert target.incomplete() == []
    assert not big.exists()


def test_killed_between_upload_and_rename_or_complete(target: Target, outbox: Path) -> None:
    """What a kill after the last byte leaves (a whole `.part`; an upload with every part, never completed)
    is finished or replaced by the next run: the final name gets the file, whole, once."""
    path = recording(outbox, "video", DAY, "12-00-00", 6_000_000)
    content = path.read_bytes()
    remote = remote_of(path)
    if target.kind == "sftp":
        part = target.server.root / "bees" / Path(remote).parent / f".{path.name}.part"
        part.parent.mkdir(parents=True)
        part.write_bytes(content)
    else:
        client, key = target.server.client(), f"lab/{remote}"
        upload = client.create_multipart_upload(Bucket=target.bucket, Key=key)["UploadId"]
        client.upload_part(Bucket=target.bucket, Key=key, UploadId=upload, PartNumber=1, Body=content)
    assert target.incomplete()
    done = run_cli(target.env(), "run", "--once", timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert target.files() == {remote: content}
    assert target.incomplete() == []


def test_server_stopped_and_restarted_mid_run(own_target: Target, outbox: Path, tmp_path: Path) -> None:
    target = own_target
    first = recording(outbox, "audio", DAY, "10-00-00", 20_000)
    process, log = start(target.env(), tmp_path)
    try:
        wait_until(lambda: remote_of(first) in target.files(), timeout=30)
        target.stop()
        second = recording(outbox, "audio", DAY, "10-01-00", 20_000)
        content = second.read_bytes()
        wait_until(lambda: "cannot reach" in log.read_text(), timeout=30)  # the uploader met the outage
        assert second.exists()
        target.restart()
        wait_until(lambda: arrived(target, remote_of(second), content), timeout=40)
        wait_until(lambda: not second.exists(), timeout=10)
    finally:
        code = stop(process)
    assert code == 0, log.read_text()[-3000:]
    assert "again after" in log.read_text()


def test_live_recording_overtakes_the_backlog(target: Target, outbox: Path, tmp_path: Path) -> None:
    """40 backlog files over one capped session; a recording made meanwhile arrives while most still wait."""
    backlog = [recording(outbox, "audio", OLD_DAY, f"09-{i:02d}-00", 50_000) for i in range(40)]
    for path in backlog:
        os.utime(path, (time.time() - 86400, time.time() - 86400))
    env = target.env(
        BEEMON_UPLOAD__BANDWIDTH_LIMIT_KBPS="2000",
        BEEMON_SFTP__CONNECTIONS="1",
        BEEMON_S3__CONNECTIONS="1",
    )
    process, log = start(env, tmp_path)
    try:
        wait_until(lambda: len(target.files()) >= 2, timeout=30)
        live = recording(outbox, "audio", DAY, "23-00-00", 50_000)
        wait_until(lambda: remote_of(live) in target.files(), timeout=30)
        waiting = sum(path.exists() for path in backlog)
    finally:
        stop(process)
    assert waiting >= 25, f"only {waiting} backlog files were still waiting: {log.read_text()[-2000:]}"


def test_demo_delivers_every_file_it_wrote(target: Target, tmp_path: Path) -> None:
    """`demo` against the configured server: the simulated station's files are read back byte-identical."""
    done = run_cli(target.env(), "demo", "--duration", "2", "--var", str(tmp_path / "var"), timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "0 missing" in done.stdout
    assert any(name.startswith("rpi4-demo/") for name in target.files())
