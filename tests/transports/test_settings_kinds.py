"""sink.kind and the [sftp] / [s3] tables: one line and exit 2 for what cannot work, no secret in settings.toml,
and an FTP station that neither imports nor needs asyncssh or boto3."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli


def env_for(tmp_path: Path, **values: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    env.update(BEEMON_ENV="production", BEEMON_CONFIG_DIR=str(site), BEEMON_LOCAL_OUTPUT_DIRECTORY=str(outbox))
    env.update(BEEMON_STATION="rpi4-7", **values)
    return env


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"BEEMON_SINK__KIND": "webdav"}, "setting sink.kind = 'webdav' is not valid: it must be one of ftp, sftp, s3"),
        ({"BEEMON_SINK__KIND": "sftp"}, 'setting sftp.host is required with sink.kind = "sftp"'),
        (
            {"BEEMON_SINK__KIND": "sftp", "BEEMON_SFTP__HOST": "h", "BEEMON_SFTP__USERNAME": "bee"},
            "setting sftp.key_file or sftp.password is required",
        ),
        ({"BEEMON_SINK__KIND": "s3"}, 'setting s3.bucket is required with sink.kind = "s3"'),
        (
            {"BEEMON_SINK__KIND": "s3", "BEEMON_S3__BUCKET": "b", "BEEMON_S3__ACCESS_KEY_ID": "k"},
            'setting s3.secret_access_key is required with sink.kind = "s3": set it in .secrets.toml or'
            " BEEMON_S3__SECRET_ACCESS_KEY",
        ),
        (
            {"BEEMON_SINK__KIND": "s3", "BEEMON_S3__BUCKET": "b", "BEEMON_S3__ENDPOINT_URL": "s3.example.org"},
            "setting s3.endpoint_url = 's3.example.org' is not valid: it must be an http:// or https:// address",
        ),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(tmp_path: Path, values: dict[str, str], words: str) -> None:
    done = run_cli(env_for(tmp_path, **values), "check")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and words in done.stderr, done.stderr


def test_a_secret_in_settings_toml_is_refused(tmp_path: Path) -> None:
    env = env_for(tmp_path, BEEMON_SINK__KIND="s3", BEEMON_S3__BUCKET="b", BEEMON_S3__ACCESS_KEY_ID="k")
    (tmp_path / "site" / "settings.toml").write_text(
        '[production.s3]\ndynaconf_merge = true\nsecret_access_key = "x"\n'
    )
    done = run_cli(env, "check")
    assert done.returncode == 2
    assert "s3.secret_access_key is set in" in done.stderr and "BEEMON_S3__SECRET_ACCESS_KEY" in done.stderr


def test_the_ftp_sink_imports_neither_asyncssh_nor_boto3() -> None:
    """The default install runs without the extras: nothing on the FTP path imports them."""
    code = (
        "import sys, pipeline.cli.main, pipeline.app.uploader, pipeline.sink.process, pipeline.cli.check;"
        "from pipeline.sink.transports import make_transport; from pipeline.ftp.params import FtpParams;"
        "make_transport(FtpParams('127.0.0.1'));"
        "bad = [m for m in ('asyncssh', 'boto3', 'botocore') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_extra_is_one_line_naming_the_install(tmp_path: Path) -> None:
    """sink.kind = "sftp" without asyncssh (hidden from this run): exit 2 with the pip command."""
    env = env_for(
        tmp_path,
        BEEMON_SINK__KIND="sftp",
        BEEMON_SFTP__HOST="h",
        BEEMON_SFTP__USERNAME="bee",
        BEEMON_SFTP__PASSWORD="pw",
    )
    code = (
        "import importlib.util, sys; real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda n, *a: None if n == 'asyncssh' else real(n, *a);"
        "from pipeline.cli.main import main; sys.argv = ['beemon-uploader', 'check']; sys.exit(main())"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert "pip install 'beemon-uploader[sftp]'" in done.stderr and done.stderr.strip().count("\n") == 0
