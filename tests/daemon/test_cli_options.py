"""Global options before or after the command, and `--version`."""

from __future__ import annotations

import pytest

from pipeline.app.version import VERSION
from pipeline.cli.main import _parser, main


@pytest.mark.parametrize(
    "argv",
    [
        ["--env", "testing", "--config-dir", "/site", "--legacy-ini", "b.ini", "config"],
        ["config", "--env", "testing", "--config-dir", "/site", "--legacy-ini", "b.ini"],
        ["--env", "testing", "config", "--config-dir", "/site", "--legacy-ini", "b.ini"],
    ],
)
def test_global_options_work_before_or_after_the_command(argv):
    args = _parser().parse_args(argv)
    assert (args.command, args.env, args.config_dir, args.legacy_ini) == ("config", "testing", "/site", "b.ini")
    assert (args.log_format, args.log_level) == ("text", "INFO")


def test_an_option_after_the_command_does_not_reset_one_before_it():
    args = _parser().parse_args(["--log-format", "json", "run", "--once", "--log-level", "DEBUG"])
    assert (args.log_format, args.log_level, args.once) == ("json", "DEBUG", True)


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"beemon-uploader {VERSION}\n"
    assert VERSION == "0.1.0"


def test_legacy_ini_after_the_command_is_read(tmp_path, capsys, monkeypatch):
    """The issue's example: `config --legacy-ini F` was a usage error."""
    monkeypatch.setenv("BEEMON_CONFIG_DIR", str(tmp_path))
    ini = tmp_path / "beemon-config.ini"
    ini.write_text("[ftp]\nhost = ftp.example.org\nusername = bee\npassword = secret\n")
    assert main(["config", "--legacy-ini", str(ini), "--env", "production"]) == 0
    out = capsys.readouterr().out
    assert "ftp.example.org" in out and "secret" not in out
