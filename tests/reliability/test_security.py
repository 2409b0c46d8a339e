"""Security: certificates checked, clear-text FTP and open secrets warned about, the password never shown."""

from __future__ import annotations

import gc
import os
import urllib.request
from pathlib import Path

import pytest

from pipeline.app.transport_risks import is_loopback, transport_risks
from pipeline.ftp.params import FtpParams
from settings import build_settings
from settings.loader import readable_secrets
from tests.e2e.conftest import run_cli, uploader_env
from tests.ftp_faults import Faults
from tests.helpers import free_port, lines_with, wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.server import WatchedTLSHandler

DAY = "2022-07-19"


def put(outbox: Path, name: str, content: bytes) -> str:
    path = outbox / "audio" / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return remote_of(f"{DAY}/audio/{name}")


def tls_server(watched_server, tls_files):
    return watched_server(
        handler=WatchedTLSHandler,
        certfile=tls_files.cert_file,
        tls_control_required=True,
        tls_data_required=True,
        ssl_context=None,
    )


# --- TLS and clear text


def test_ftps_certificates_are_verified_unless_explicitly_turned_off(watched_server, tls_files, outbox, tmp_path):
    server = tls_server(watched_server, tls_files)
    remote = put(outbox, "a.wav", b"RIFF over TLS")
    fast = {
        "BEEMON_FTP__TLS": "explicit",
        "BEEMON_UPLOAD__RETRY_MAX_SECONDS": "0.2",
        "BEEMON_FTP__TIMEOUT_SECONDS": "0.5",
    }

    # The system's authorities do not know the test CA: refused, nothing sent, nothing deleted.
    done = run_cli(uploader_env(server, outbox, tmp_path, **fast), "run", "--once", "--max-retries", "0")
    assert done.returncode == 1, done.stderr
    assert len(lines_with(done.stderr, "TLS certificate verification failed")) == 1, done.stderr
    assert server.password not in done.stderr + done.stdout
    assert server.watch.logins == [] and server.files() == {}
    assert outbox_files(outbox) == [f"audio/{DAY}/a.wav"]

    # Turned off explicitly: it works, with one warning at start naming the risk.
    done = run_cli(uploader_env(server, outbox, tmp_path, BEEMON_FTP__VERIFY="false", **fast), "run", "--once")
    assert done.returncode == 0, done.stderr
    assert len(lines_with(done.stderr, "ftp.verify = false: the certificate of 127.0.0.1 is not checked")) == 1
    assert server.files() == {remote: b"RIFF over TLS"}

    # With the right authority: verified, no warning.
    remote = put(outbox, "b.wav", b"RIFF verified")
    done = run_cli(
        uploader_env(server, outbox, tmp_path, BEEMON_FTP__CA_FILE=tls_files.ca_file, **fast), "run", "--once"
    )
    assert done.returncode == 0, done.stderr
    assert server.files()[remote] == b"RIFF verified"
    assert " WARNING " not in done.stderr, done.stderr


def test_plain_ftp_to_a_remote_host_is_warned_about_at_start_and_loopback_is_not(watched_server, outbox, tmp_path):
    server = watched_server()
    # 192.0.2.1 is TEST-NET-1: never routed, so nothing is sent anywhere; the warning comes at start.
    remote = uploader_env(server, outbox, tmp_path, BEEMON_FTP__HOST="192.0.2.1", BEEMON_FTP__TIMEOUT_SECONDS="1")
    done = run_cli(remote, "run", "--once")
    assert done.returncode == 0, done.stderr  # nothing was ready
    warnings = lines_with(done.stderr, "ftp.tls = none")
    assert len(warnings) == 1, done.stderr
    assert " WARNING " in warnings[0] and "192.0.2.1 unencrypted" in warnings[0] and "ftp.tls = explicit" in warnings[0]
    done = run_cli(uploader_env(server, outbox, tmp_path), "run", "--once")
    assert "ftp.tls = none" not in done.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("station.localhost", True),
        ("10.0.0.5", False),
        ("ftp.example.org", False),
        ("localhost.example.org", False),
        ("", False),
    ],
)
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


def test_transport_risks_name_each_risk_once():
    assert transport_risks(FtpParams("127.0.0.1")) == []
    assert transport_risks(FtpParams("ftp.example.org", tls="explicit")) == []
    [clear] = transport_risks(FtpParams("ftp.example.org"))
    assert "unencrypted" in clear and "ftp.tls = explicit" in clear
    [unchecked] = transport_risks(FtpParams("127.0.0.1", tls="implicit", verify=False))
    assert "ftp.verify = false" in unchecked and "ftp.ca_file" in unchecked


# --- secrets files


def test_a_secrets_file_others_can_read_is_warned_about_once_at_start(watched_server, outbox, tmp_path):
    server = watched_server()
    env = uploader_env(server, outbox, tmp_path)
    secrets = Path(env["BEEMON_CONFIG_DIR"]) / ".secrets.toml"
    secrets.write_text(f'[testing.ftp]\ndynaconf_merge = true\npassword = "{server.password}"\n')
    del env["BEEMON_FTP__PASSWORD"]  # the password comes from the file
    remote = put(outbox, "a.wav", b"RIFF")
    secrets.chmod(0o644)
    done = run_cli(env, "run", "--once")
    assert done.returncode == 0, done.stderr
    assert server.files() == {remote: b"RIFF"}
    warned = lines_with(done.stderr, ".secrets.toml")
    assert len(warned) == 1, done.stderr
    assert str(secrets) in warned[0] and "mode 644" in warned[0] and f"chmod 600 {secrets}" in warned[0]
    secrets.chmod(0o600)
    done = run_cli(env, "config")
    assert done.returncode == 0 and ".secrets.toml can be read" not in done.stderr


def test_readable_secrets_looks_at_group_and_world_bits_of_secrets_files_only(tmp_path):
    files = {}
    for mode in (0o600, 0o640, 0o604, 0o400):
        folder = tmp_path / f"{mode:o}"
        folder.mkdir()
        files[mode] = folder / ".secrets.toml"
        files[mode].write_text("")
        files[mode].chmod(mode)
    other = tmp_path / "settings.toml"
    other.write_text("")
    other.chmod(0o644)
    paths = [str(p) for p in files.values()] + [str(other), str(tmp_path / "missing" / ".secrets.toml")]
    assert readable_secrets(paths) == [(str(files[0o640]), 0o640), (str(files[0o604]), 0o604)]


# --- the password, wherever one might look


def test_the_password_appears_in_no_output_process_title_or_metrics_of_a_full_and_a_failing_run(
    watched_server, outbox, tmp_path, start_uploader
):
    server = watched_server()
    password = server.password
    seen: list[str] = []
    port = free_port()
    env = uploader_env(server, outbox, tmp_path, BEEMON_METRICS__PORT=str(port))

    # A full run, as verbose as it gets, in the format that carries every field (the text lines are
    # searched by the other tests of this folder).
    for log_format in ("json",):
        name = f"{log_format}.wav"
        remote = put(outbox, name, b"RIFF " + name.encode())
        run = start_uploader(env, "--log-format", log_format, "--log-level", "DEBUG", "run", "--stats-interval", "0.2")
        wait_until(lambda r=remote: r in server.files() and not list(outbox.rglob("*.wav")), timeout=20)
        wait_until(lambda r=run: "stats: " in r.output(), timeout=10)
        for pid in run.group():
            for entry in ("cmdline", "comm", "environ"):
                with open(f"/proc/{pid}/{entry}", "rb") as handle:
                    text = handle.read().decode(errors="replace")
                seen.append(text if entry != "environ" else text.replace(f"BEEMON_FTP__PASSWORD={password}", ""))
        seen.append(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
        assert run.stop() == 0
        seen.append(run.output())
        assert len(run.group()) == 0 or not run.alive()

    # Failing runs: a server that echoes the password in its refusal, one that refuses renames,
    # an untrusted certificate; and `check` and `config`.
    echo = watched_server(Faults(refuse={"PASS": f"530 Login incorrect: {password} is not accepted"}))
    echo.password = password
    put(outbox, "echo.wav", b"RIFF")
    failing = [
        (echo, {}, ("check",)),
        (watched_server(Faults(refuse={"RNFR": "553 Renaming not allowed."})), {}, ("config",)),
    ]  # (an untrusted certificate: in the TLS test above)
    for target, extra, more in failing:
        target.password = password
        env = uploader_env(
            target, outbox, tmp_path, BEEMON_UPLOAD__RETRY_MAX_SECONDS="0.2", BEEMON_FTP__TIMEOUT_SECONDS="0.5", **extra
        )
        for args in (("--log-level", "DEBUG", "run", "--once", "--max-retries", "0"), more):
            if args:
                done = run_cli(env, *args)
                seen.extend([done.stdout, done.stderr])
    assert any("530 Login incorrect: *** is not accepted" in text for text in seen)  # scrubbed, not dropped
    leaks = [text[max(0, text.index(password) - 300) :][:600] for text in seen if password in text]
    assert leaks == []


@pytest.mark.filterwarnings("ignore:Usage of `from dynaconf import settings`:DeprecationWarning")  # its repr, touched
def test_no_object_of_a_running_pipeline_shows_the_password_in_its_repr(watched_server, outbox, tmp_path, monkeypatch):
    from pipeline.app.options import options_from_settings
    from pipeline.app.running import RunningPipeline
    from pipeline.app.stats import UploadStats
    from pipeline.ftp.params import UploadPolicy
    from pipeline.sink.workers import Sink

    server = watched_server()
    for key, value in uploader_env(server, outbox, tmp_path).items():
        if key.startswith("BEEMON_"):
            monkeypatch.setenv(key, value)
    settings = build_settings()
    options = options_from_settings(settings)
    del settings
    # The sink's insides (sessions, ftplib clients, board, pool) live in its process: run one here too.
    sink = Sink(options.ftp, UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5))
    sink.start()
    remote = put(outbox, "a.wav", b"RIFF a")
    try:
        with RunningPipeline(options, UploadStats()) as running:
            wait_until(lambda: remote in server.files(), timeout=20)
            from operators.model import UploadJob

            path = outbox / "audio" / DAY / "b.wav"
            path.write_bytes(b"RIFF b")
            stat = path.stat()
            sink.put(UploadJob(str(path), "/data/b.wav", stat.st_size, stat.st_mtime_ns))
            wait_until(lambda: not path.exists(), timeout=20)
            gc.collect()
            checked = shown = 0
            for obj in gc.get_objects():
                module = type(obj).__module__ or ""
                if module.split(".")[0] not in ("pipeline", "operators", "settings", "dynaconf", "ftplib", "ssl"):
                    continue
                checked += 1
                try:
                    text = repr(obj) + str(obj)
                except Exception:
                    continue
                shown += 1
                assert options.ftp.password not in text, (type(obj), text[:300])
            assert running.helper is not None and checked > 50 and shown > 50
    finally:
        sink.stop(2)
    assert os.environ["BEEMON_FTP__PASSWORD"] == options.ftp.password
