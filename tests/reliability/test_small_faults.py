"""Issue 11.5: the smaller faults. Each ends in one line and exit 2 at start, or one warning per episode,
and the password is masked where it is printed, never found by searching the text.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli, uploader_env
from tests.ftp_faults import Faults
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of

DAY = "2022-07-19"
OLD = 1_600_000_000


def put(outbox: Path, name: str, sensor: str = "audio") -> Path:
    path = outbox / sensor / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF " + name.encode())
    os.utime(path, (OLD, OLD))
    return path


def one_line(done, *words: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def test_a_metrics_port_in_use_is_one_line_and_exit_2(watched_server, outbox, tmp_path):
    server = watched_server()
    waiting = put(outbox, "waiting.wav")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = uploader_env(server, outbox, tmp_path, BEEMON_METRICS__PORT=str(port))
        for args in (("run", "--stats-interval", "0"), ("run", "--once")):
            one_line(run_cli(env, *args, timeout=30), "metrics.port", str(port), "BEEMON_METRICS__PORT")
    assert waiting.exists() and server.files() == {}


def test_an_outbox_that_is_a_file_is_one_line_and_exit_2(watched_server, tmp_path):
    server = watched_server()
    not_a_folder = tmp_path / "outbox"
    not_a_folder.write_bytes(b"a file where the outbox should be")
    env = uploader_env(server, not_a_folder, tmp_path)
    for args in (("run", "--stats-interval", "0"), ("run", "--once")):
        one_line(run_cli(env, *args, timeout=30), "local_output_directory", "not a folder")
    assert not_a_folder.read_bytes() == b"a file where the outbox should be"


def test_a_full_disk_on_the_server_is_one_warning_per_episode_with_its_words(
    watched_server, outbox, tmp_path, start_uploader
):
    faults = Faults(stor_replies=["452 No space left on device."] * 4)
    server = watched_server(faults)
    first = put(outbox, "first.wav")
    run = start_uploader(uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1"))
    wait_until(lambda: not first.exists(), timeout=30)
    faults.stor_replies.extend(["552 Exceeded storage allocation."] * 3)  # the disk fills up again
    second = put(outbox, "second.wav")
    wait_until(lambda: not second.exists(), timeout=30)
    assert run.stop() == 0
    output = run.output()
    warnings = [line for line in output.splitlines() if " WARNING " in line and "no space left" in line]
    assert len(warnings) == 2, output
    assert "452 No space left on device." in warnings[0] and "552 Exceeded storage allocation." in warnings[1]
    assert output.count("the server takes files again") == 2
    assert sorted(server.files()) == [remote_of(f"{DAY}/audio/first.wav"), remote_of(f"{DAY}/audio/second.wav")]


def test_a_password_that_is_a_common_word_does_not_mask_paths_and_is_masked_where_printed(
    watched_server, outbox, tmp_path
):
    server = watched_server()
    server.stop()
    server.password = "audio"
    server.start_again()
    put(outbox, "audio-1.wav")
    env = uploader_env(server, outbox, tmp_path)
    done = run_cli(env, "--log-level", "DEBUG", "run", "--once")
    assert done.returncode == 0, done.stderr
    assert f"{outbox}/audio/{DAY}/audio-1.wav" in done.stderr  # not "***/***-1.wav"
    assert "***" not in done.stderr
    config = run_cli(env, "config")
    assert next(line for line in config.stdout.splitlines() if line.startswith("ftp.password")).split()[1] == "********"

    echo = watched_server(Faults(refuse={"PASS": "530 Login incorrect: audio is not accepted"}))
    echo.password = "audio"
    done = run_cli(uploader_env(echo, outbox, tmp_path), "check")
    assert done.returncode == 1
    assert "530 Login incorrect: *** is not accepted" in done.stdout, done.stdout
    assert outbox_files(outbox) == []


@pytest.mark.parametrize("password", ["@str abc", "@format {env[HOME]}", "@int 12", "@jinja {{ this.x }}"])
def test_a_secret_from_the_environment_is_taken_literally(watched_server, outbox, tmp_path, password):
    server = watched_server()
    server.stop()
    server.password = password
    server.start_again()
    waiting = put(outbox, "literal.wav")
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert not waiting.exists() and remote_of(f"{DAY}/audio/literal.wav") in server.files()
