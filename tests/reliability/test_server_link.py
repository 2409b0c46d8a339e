"""The server and the link misbehave; each case end to end through `beemon-uploader run` or `run --once`."""

from __future__ import annotations

import itertools
import os
import re
import time

import pytest

from tests.e2e.conftest import run_cli, uploader_env
from tests.ftp_faults import Faults
from tests.helpers import lines_with, wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.server import DeadPort

DAY = "2022-07-19"


def wav(outbox, index: int, size: int = 30_000, name: str = "") -> tuple[str, bytes]:
    """A finished WAV in the outbox; returns (its remote path, its bytes)."""
    name = name or f"rpi4-test@{DAY}@10-00-{index:02d}.wav"
    path = outbox / "audio" / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"RIFF" + os.urandom(size)
    path.write_bytes(content)
    return remote_of(f"{DAY}/audio/{name}"), content


def test_server_down_mid_run_then_back_delivers_everything_without_hammering(
    scale, watched_server, outbox, tmp_path, start_uploader
):
    retry_max = 1.0
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path, BEEMON_UPLOAD__RETRY_MAX_SECONDS=str(retry_max))
    run = start_uploader(env)
    expected = dict([wav(outbox, 0)])
    wait_until(lambda: server.files() == expected, timeout=20)

    server.stop()
    dead = DeadPort(server.server.port)
    down_at = time.monotonic()
    try:
        expected.update(wav(outbox, i) for i in range(1, 6))  # written while the server is down
        wait_until(lambda: time.monotonic() - down_at > scale.outage_seconds, timeout=scale.outage_seconds + 5)
    finally:
        dead.close()
    down_for = time.monotonic() - down_at
    server.start_again()
    back_at = time.monotonic()
    wait_until(lambda: server.files() == expected and outbox_files(outbox) == [], timeout=30)
    assert run.stop() == 0
    output = run.output()

    # The first upload after the return came within the backoff cap (plus a little work).
    first_store = min(at for at, _ in server.watch.stores if at > back_at)
    assert first_store - back_at < retry_max + 1.0, output
    # No tight loop while it was down: exponential backoff with full jitter, capped at retry_max, per session.
    sessions, ramp = 2, 6  # the testing environment's connections; failures before the cap is reached
    assert 1 <= len(dead.attempts) <= sessions * (ramp + 3 * down_for / retry_max), (len(dead.attempts), down_for)
    assert len(lines_with(output, "cannot reach")) == 1, output
    assert len(lines_with(output, "again after")) == 1, output


def test_a_wrong_password_gives_one_error_line_retries_at_the_cap_and_deletes_nothing(
    scale, watched_server, outbox, tmp_path, start_uploader
):
    retry_max = 0.5
    server = watched_server()
    files = dict(wav(outbox, i) for i in range(3))
    before = outbox_files(outbox)
    wrong = "wrong-" + os.urandom(6).hex()
    env = uploader_env(
        server, outbox, tmp_path, BEEMON_FTP__PASSWORD=wrong, BEEMON_UPLOAD__RETRY_MAX_SECONDS=str(retry_max)
    )
    run = start_uploader(env)
    wait_until(lambda: server.watch.logins, timeout=20)
    started = server.watch.logins[0]
    window = max(1.6, scale.outage_seconds)
    wait_until(lambda: time.monotonic() - started > window, timeout=window + 5)
    assert run.stop() == 0
    output = run.output()

    errors = lines_with(output, "cannot log in")
    assert len(errors) == 1, output
    assert " ERROR " in errors[0] and "530" in errors[0], errors
    # One session probes the account, at start and then once per retry_max: a lockout policy (fail2ban)
    # is not tripped. (The other session opened its connection, but sent nothing of the account.)
    logins = list(server.watch.logins)
    first_wave = [at for at in logins if at - started < 0.6 * retry_max]
    assert len(first_wave) == 1, logins
    later = logins[len(first_wave) :]
    gaps = [b - a for a, b in itertools.pairwise(later)]
    assert len(later) >= 1, logins
    assert all(gap > 0.9 * retry_max for gap in gaps), gaps
    assert len(later) <= window / retry_max + 1, logins
    # Nothing delivered, nothing deleted, and neither password in the output.
    assert outbox_files(outbox) == before and len(files) == 3
    assert [p for p in server.root.rglob("*") if p.is_file()] == []
    assert wrong not in output and server.password not in output


def test_421_at_login_shrinks_the_sessions_and_everything_arrives(watched_server, outbox, tmp_path):
    server = watched_server(Faults(logins_421=2))
    expected = dict(wav(outbox, i) for i in range(6))
    done = run_cli(uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="3"), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert server.files() == expected
    assert outbox_files(outbox) == []
    assert lines_with(done.stderr, "answered 421 (too many connections)"), done.stderr


@pytest.mark.parametrize(
    "reply",
    [
        "452 Insufficient storage space.",
        "552 Exceeded storage allocation.",
        "421 Service not available, closing control connection.",
        "450 File busy.",
    ],
)
def test_a_transient_refusal_of_stor_is_retried_until_delivered(watched_server, outbox, tmp_path, reply):
    server = watched_server(Faults(stor_replies=[reply, reply]))
    expected = dict(wav(outbox, i) for i in range(3))
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert server.files() == expected
    assert outbox_files(outbox) == []
    retries = lines_with(done.stderr, "retrying ") + lines_with(
        done.stderr, "has no space left"
    )  # a full disk: one warning
    assert len(retries) == 2 and all(reply[:3] in line for line in retries), done.stderr


def test_550_parks_that_file_with_one_warning_while_the_rest_flows(watched_server, outbox, tmp_path, start_uploader):
    server = watched_server(Faults(deny_stor=("forbidden",)))
    expected = dict(wav(outbox, i) for i in range(3))
    denied, content = wav(outbox, 9, name="forbidden.wav")
    run = start_uploader(uploader_env(server, outbox, tmp_path))
    wait_until(lambda: server.files() == expected, timeout=20)
    # Parked, then retried every retry_max (0.5 s here), quietly.
    wait_until(lambda: len([a for a in server.faults.commands("STOR") if "forbidden" in a]) >= 3, timeout=20)
    assert run.stop() == 0
    output = run.output()
    assert outbox_files(outbox) == [f"audio/{DAY}/forbidden.wav"]
    assert (outbox / "audio" / DAY / "forbidden.wav").read_bytes() == content
    parked = lines_with(output, "parked ")
    assert len(parked) == 1 and "forbidden.wav" in parked[0] and "550" in parked[0], output
    assert denied not in server.files()


def test_553_on_rename_parks_the_file_names_the_setting_and_shows_nothing(watched_server, outbox, tmp_path):
    server = watched_server(Faults(refuse={"RNFR": "553 Renaming not allowed."}))
    remote, content = wav(outbox, 0)
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 1
    assert re.search(r"not delivered: .*10-00-00\.wav \(.*553", done.stderr), done.stderr
    assert "upload.atomic_rename = false" in done.stderr
    assert remote not in server.files()  # never visible under its final name
    assert outbox_files(outbox) == [f"audio/{DAY}/rpi4-test@{DAY}@10-00-00.wav"]
    # The advice works: without renames the file is stored under its name directly.
    done = run_cli(uploader_env(server, outbox, tmp_path, BEEMON_UPLOAD__ATOMIC_RENAME="false"), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert server.files()[remote] == content
    assert outbox_files(outbox) == []


def test_a_server_stalling_mid_transfer_times_out_and_the_file_arrives_whole(watched_server, outbox, tmp_path):
    server = watched_server()
    server.watch.stall_after_bytes, server.watch.stall_seconds, server.watch.stalls = 1_000_000, 3.0, 1
    remote, content = wav(outbox, 0, size=24_000_000)
    started = time.monotonic()
    done = run_cli(uploader_env(server, outbox, tmp_path, BEEMON_FTP__TIMEOUT_SECONDS="1"), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 15
    assert server.files() == {remote: content}
    assert outbox_files(outbox) == []
    assert server.watch.stalls == 0
    assert lines_with(done.stderr, "timed out"), done.stderr


def test_a_held_back_pool_admits_one_session_until_a_login_succeeds():
    from pipeline.sink.pool import SessionPool

    now = [0.0]
    pool = SessionPool(4, regrow_seconds=1.0, clock=lambda: now[0])
    assert pool.admit() and pool.admit()
    pool.hold_back()
    pool.release()
    pool.release()
    assert pool.admit()
    assert pool.limit == 1 and pool.active == 1
    now[0] = 100.0  # no regrowth while held back, however long it lasts
    pool._regrow(now[0])
    assert pool.limit == 1
    pool.logged_in()
    assert pool.limit == 4
    assert pool.admit() and pool.admit() and pool.admit()


def test_once_with_a_wrong_password_gives_up_at_the_first_530_and_deletes_nothing(watched_server, outbox, tmp_path):
    server = watched_server()
    files = dict(wav(outbox, i) for i in range(2))
    before = outbox_files(outbox)
    env = uploader_env(
        server,
        outbox,
        tmp_path,
        BEEMON_FTP__PASSWORD="wrong",
        BEEMON_UPLOAD__RETRY_MAX_SECONDS="0.3",
        BEEMON_FTP__TIMEOUT_SECONDS="0.5",
    )
    started = time.monotonic()
    done = run_cli(env, "run", "--once", "--max-retries", "1", timeout=30)
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 10
    refused = lines_with(done.stderr, "cannot log in")
    assert len(refused) == 1 and " ERROR " in refused[0] and "530" in refused[0], done.stderr
    assert "check ftp.username" in refused[0] and f"{len(files)} file(s) left in the outbox" in refused[0]
    assert len(lines_with(done.stderr, " ERROR ")) == 1, done.stderr
    assert outbox_files(outbox) == before
    assert server.files() == {}
    # A refused login does not heal: one login, not one per session or per retry.
    assert len(server.watch.logins) == 1
