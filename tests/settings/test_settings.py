"""Every settings rule: environments, env-var overrides, merging, validation, legacy INI, masking."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import exit_codes
from pipeline.cli.main import main
from settings import SettingsError, build_settings, describe_settings, read_legacy_ini
from settings.legacy_ini import LegacyIniError
from settings.validators import RULES, envvar


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No BEEMON_* variable from the machine, an empty site folder, and a clean working directory."""
    import os

    for name in list(os.environ):
        if name.startswith("BEEMON_"):
            monkeypatch.delenv(name)
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setenv("BEEMON_CONFIG_DIR", str(site))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return site


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


PRODUCTION_SITE = """
[production.ftp]
dynaconf_merge = true
host = "ftp.example.org"
username = "bee"
"""


def test_development_is_the_default_environment() -> None:
    settings = build_settings()
    assert settings.current_env.lower() == "development"
    assert settings.local_output_directory == "./var/outbox"
    assert settings.ftp.host == "embedded"
    assert settings.ftp.remote_root == "/usr/local/bee/appmais"
    assert settings.ftp.tls == "none"
    assert settings.ftp.verify is True
    assert settings.ftp.connections == 4
    assert settings.ftp.timeout_seconds == 30
    assert settings.upload.debounce_seconds == 2
    assert (settings.upload.atomic_rename, settings.upload.verify_size, settings.upload.delete_after_upload) == (
        True,
        True,
        True,
    )
    assert (settings.upload.retry_base_seconds, settings.upload.retry_max_seconds) == (1, 300)
    assert settings.upload.bandwidth_limit_kbps == 0
    assert settings.upload.backfill_order == "newest"
    assert list(settings.upload.ignore_patterns) == [".*", "*.part", "*.tmp", "*~", "*.swp"]
    assert settings.watch.observer == "inotify"
    assert (settings.watch.polling_interval_seconds, settings.watch.rescan_interval_seconds) == (1, 600)


def test_station_defaults_to_the_host_name() -> None:
    assert build_settings().station == socket.gethostname()


def test_beemon_env_switches_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEMON_ENV", "testing")
    monkeypatch.setenv("BEEMON_FTP__PASSWORD", "pw")
    settings = build_settings()
    assert settings.current_env.lower() == "testing"
    assert settings.upload.debounce_seconds == 0.2
    assert settings.ftp.remote_root == "/usr/local/bee/appmais"
    assert settings.local_output_directory == "./var/test-outbox"
    assert settings.ftp.host == "127.0.0.1"


def test_production_defaults_and_requirements(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated_environment / "settings.toml", PRODUCTION_SITE)
    monkeypatch.setenv("BEEMON_FTP__PASSWORD", "pw")
    settings = build_settings("production")
    assert settings.local_output_directory == "/home/bee/appmais/bee_tmp"
    assert settings.ftp.host == "ftp.example.org"


@pytest.mark.parametrize(
    ("site", "password", "message"),
    [
        (
            "",
            "pw",
            "setting ftp.host is required in the production environment: set it in settings.toml or BEEMON_FTP__HOST",
        ),
        (
            '[production.ftp]\ndynaconf_merge = true\nhost = "h"\n',
            "pw",
            "setting ftp.username is required in the production environment: set it in settings.toml or BEEMON_FTP__USERNAME",
        ),
        (
            PRODUCTION_SITE,
            None,
            "setting ftp.password is required in the production environment: set it in .secrets.toml or BEEMON_FTP__PASSWORD",
        ),
    ],
)
def test_production_requires_credentials(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch, site: str, password: str | None, message: str
) -> None:
    write(isolated_environment / "settings.toml", site)
    if password:
        monkeypatch.setenv("BEEMON_FTP__PASSWORD", password)
    with pytest.raises(SettingsError) as error:
        build_settings("production")
    assert str(error.value) == message


def test_environment_variables_override_any_key_parsed_as_toml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEMON_FTP__PORT", "2100")
    monkeypatch.setenv("BEEMON_UPLOAD__DEBOUNCE_SECONDS", "0.5")
    monkeypatch.setenv("BEEMON_UPLOAD__ATOMIC_RENAME", "false")
    monkeypatch.setenv("BEEMON_WATCH__OBSERVER", "polling")
    monkeypatch.setenv("BEEMON_LOCAL_OUTPUT_DIRECTORY", "/data/outbox")
    monkeypatch.setenv("BEEMON_STATION", "rpi4-11")
    monkeypatch.setenv("BEEMON_UPLOAD__IGNORE_PATTERNS", '["*.tmp"]')
    settings = build_settings()
    assert settings.ftp.port == 2100
    assert settings.upload.debounce_seconds == 0.5
    assert settings.upload.atomic_rename is False
    assert settings.watch.observer == "polling"
    assert settings.local_output_directory == "/data/outbox"
    assert settings.station == "rpi4-11"
    assert list(settings.upload.ignore_patterns) == ["*.tmp"]
    # The rest of the nested table is kept.
    assert settings.ftp.remote_root == "/usr/local/bee/appmais"
    assert settings.ftp.connections == 4


def test_nested_tables_merge_across_layers(isolated_environment: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(isolated_environment / "settings.toml", '[production.ftp]\ndynaconf_merge = true\nhost = "h.example"\n')
    write(
        isolated_environment / ".secrets.toml",
        '[production.ftp]\ndynaconf_merge = true\nusername = "u"\npassword = "p"\n',
    )
    settings = build_settings("production")
    assert settings.ftp.host == "h.example"
    assert settings.ftp.username == "u"
    assert settings.ftp.password == "p"
    assert settings.ftp.port == 21
    assert settings.ftp.remote_root == "/usr/local/bee/appmais"
    assert settings.ftp.connections == 4
    assert settings.upload.retry_max_seconds == 300


def test_working_directory_secrets_file_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    write(Path.cwd() / ".secrets.toml", "[development.ftp]\ndynaconf_merge = true\npassword = 'from-cwd'\n")
    assert build_settings().ftp.password == "from-cwd"


def test_password_in_settings_toml_is_refused(isolated_environment: Path) -> None:
    site_file = write(
        isolated_environment / "settings.toml", "[development.ftp]\ndynaconf_merge = true\npassword = 'x'\n"
    )
    with pytest.raises(SettingsError) as error:
        build_settings()
    assert str(error.value) == (
        f"ftp.password is set in {site_file}: move it to .secrets.toml (mode 600) or BEEMON_FTP__PASSWORD"
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BEEMON_FTP__PORT", "0", "setting ftp.port = 0 is not valid: it must be an integer from 1 to 65535"),
        ("BEEMON_FTP__PORT", "abc", "setting ftp.port = 'abc' is not valid: it must be an integer from 1 to 65535"),
        ("BEEMON_FTP__TLS", "ssl", "setting ftp.tls = 'ssl' is not valid: it must be one of none, explicit, implicit"),
        ("BEEMON_FTP__VERIFY", "'yes'", "setting ftp.verify = 'yes' is not valid: it must be true or false"),
        (
            "BEEMON_FTP__CONNECTIONS",
            "0",
            "setting ftp.connections = 0 is not valid: it must be an integer from 1 to 32",
        ),
        (
            "BEEMON_FTP__REMOTE_ROOT",
            "relative/path",
            "setting ftp.remote_root = 'relative/path' is not valid: "
            "it must be an absolute remote folder such as /usr/local/bee/appmais",
        ),
        (
            "BEEMON_UPLOAD__DEBOUNCE_SECONDS",
            "-1",
            "setting upload.debounce_seconds = -1 is not valid: it must be a number of seconds from 0 to 3600",
        ),
        (
            "BEEMON_UPLOAD__BACKFILL_ORDER",
            "random",
            "setting upload.backfill_order = 'random' is not valid: it must be one of newest, oldest",
        ),
        (
            "BEEMON_WATCH__OBSERVER",
            "kqueue",
            "setting watch.observer = 'kqueue' is not valid: it must be one of inotify, polling",
        ),
        (
            "BEEMON_UPLOAD__IGNORE_PATTERNS",
            "'*.tmp'",
            "setting upload.ignore_patterns = '*.tmp' is not valid: it must be a list of glob patterns such as ['*.tmp']",
        ),
        (
            "BEEMON_METRICS__PORT",
            "70000",
            "setting metrics.port = 70000 is not valid: "
            "it must be an integer from 1 to 65535, or 0 for no metrics endpoint",
        ),
    ],
)
def test_bad_values_give_one_line_naming_key_value_and_allowed(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        build_settings()
    key = variable.removeprefix("BEEMON_").lower().replace("__", ".")
    assert str(error.value) == f"{message}; fix it in settings.toml or {envvar(key)}"
    assert "\n" not in str(error.value)


def test_retry_base_above_max_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEMON_UPLOAD__RETRY_BASE_SECONDS", "10")
    monkeypatch.setenv("BEEMON_UPLOAD__RETRY_MAX_SECONDS", "5")
    with pytest.raises(SettingsError, match=r"^setting upload.retry_base_seconds = 10 is above"):
        build_settings()


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(SettingsError) as error:
        build_settings("staging")
    assert str(error.value) == (
        "environment 'staging' is unknown: set BEEMON_ENV to one of development, testing, production"
    )


def test_every_rule_has_a_default_that_validates() -> None:
    settings = build_settings()
    for key in RULES:
        if key != "ftp.password":
            assert settings.get(key) is not None, key


LEGACY_INI = """\
[global]
root_upload_directory = /usr/local/bee/beemon
local_output_directory = /home/bee/bee_tmp
capture_interval = 60

[ftp]
username = bee
password = legacy-secret
host = cs.example.edu
port = 2021
upload_delay = 5
"""


def test_legacy_ini_maps_onto_the_keys(tmp_path: Path) -> None:
    ini = write(tmp_path / "beemon-config.ini", LEGACY_INI)
    assert read_legacy_ini(ini) == {
        "ftp.remote_root": "/usr/local/bee/beemon",
        "local_output_directory": "/home/bee/bee_tmp",
        "ftp.username": "bee",
        "ftp.password": "legacy-secret",
        "ftp.host": "cs.example.edu",
        "ftp.port": 2021,
        "upload.debounce_seconds": 5.0,
    }
    settings = build_settings("production", legacy_ini=ini)
    assert settings.ftp.remote_root == "/usr/local/bee/beemon"
    assert settings.local_output_directory == "/home/bee/bee_tmp"
    assert settings.ftp.host == "cs.example.edu"
    assert settings.ftp.port == 2021
    assert settings.ftp.username == "bee"
    assert settings.ftp.password == "legacy-secret"
    assert settings.upload.debounce_seconds == 5.0
    # Keys the INI does not name keep their defaults.
    assert settings.ftp.connections == 4


def test_environment_variables_win_over_the_legacy_ini(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ini = write(tmp_path / "beemon-config.ini", LEGACY_INI)
    monkeypatch.setenv("BEEMON_FTP__PORT", "990")
    settings = build_settings("production", legacy_ini=ini)
    assert settings.ftp.port == 990
    assert settings.ftp.host == "cs.example.edu"


def test_legacy_ini_errors_are_one_line_without_the_password(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^cannot read legacy INI .*missing.ini: No such file or directory; "):
        build_settings(legacy_ini=tmp_path / "missing.ini")
    bad_port = write(tmp_path / "bad.ini", "[ftp]\nport = twenty-one\npassword = hunter2\n")
    with pytest.raises(LegacyIniError) as error:
        read_legacy_ini(bad_port)
    assert str(error.value) == f"legacy INI {bad_port}: [ftp] port = 'twenty-one' is not a int; fix it in the INI file"
    garbage = write(tmp_path / "garbage.ini", "password = hunter2\n")
    with pytest.raises(SettingsError) as error2:
        build_settings(legacy_ini=garbage)
    assert "hunter2" not in str(error2.value)
    assert str(error2.value).startswith(f"legacy INI {garbage} is not a valid INI file (")


def test_describe_masks_secrets_and_names_layers(
    isolated_environment: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site_file = write(isolated_environment / "settings.toml", PRODUCTION_SITE)
    ini = write(tmp_path / "beemon-config.ini", "[global]\nroot_upload_directory = /srv/bee\n")
    monkeypatch.setenv("BEEMON_FTP__PASSWORD", "s3cret-value")
    monkeypatch.setenv("BEEMON_FTP__PORT", "2121")
    rows = {
        key: (shown, layer) for key, shown, layer in describe_settings(build_settings("production", legacy_ini=ini))
    }
    assert rows["ftp.password"] == ("********", "environment BEEMON_FTP__PASSWORD")
    assert rows["ftp.port"] == ("2121", "environment BEEMON_FTP__PORT")
    assert rows["ftp.host"] == ("'ftp.example.org'", f"settings.toml [production] ({site_file})")
    assert rows["ftp.remote_root"] == ("'/srv/bee'", f"legacy INI {ini}")
    assert rows["station"] == (repr(socket.gethostname()), "host name")
    packaged = Path(__file__).resolve().parents[2] / "settings" / "settings.toml"
    assert rows["ftp.connections"] == ("4", f"settings.toml [default] ({packaged})")
    assert rows["local_output_directory"] == ("'/home/bee/appmais/bee_tmp'", f"settings.toml [production] ({packaged})")
    assert set(rows) == set(RULES)


def test_config_command_prints_masked_settings(
    isolated_environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BEEMON_FTP__PASSWORD", "s3cret-value")
    assert main(["config"]) == exit_codes.OK
    out = capsys.readouterr().out
    assert "s3cret-value" not in out
    assert re.search(r"^ftp\.password +\*{8}  <- environment BEEMON_FTP__PASSWORD$", out, re.MULTILINE)
    assert out.splitlines()[0] == "environment: development"
    assert len(out.splitlines()) == 1 + len(RULES)


def test_checksum_values_agree_between_settings_and_policy() -> None:
    from operators.choices import CHECKSUMS as POLICY_CHECKSUMS
    from settings.validators import CHECKSUMS

    assert CHECKSUMS == POLICY_CHECKSUMS


def test_bad_setting_exits_2_with_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BEEMON_FTP__PORT", "0")
    assert main(["config"]) == exit_codes.BAD_USAGE
    err = capsys.readouterr().err
    assert err == (
        "beemon-uploader: setting ftp.port = 0 is not valid: it must be an integer from 1 to 65535; "
        "fix it in settings.toml or BEEMON_FTP__PORT\n"
    )


def test_console_script_help_and_exit_code_of_bad_usage() -> None:
    helped = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, check=False
    )
    assert helped.returncode == 0
    assert helped.stdout.startswith("usage: beemon-uploader")
    assert "Exit codes: 0 success, 1 failures remain, 2 bad usage or settings, or the outbox is in use." in " ".join(
        helped.stdout.split()
    )
    bad = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "frobnicate"], capture_output=True, text=True, check=False
    )
    assert bad.returncode == 2
    assert "invalid choice: 'frobnicate'" in bad.stderr


def test_a_numeric_password_or_station_in_the_environment_stays_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEEMON_FTP__PASSWORD", "0123456")
    monkeypatch.setenv("BEEMON_STATION", "11")
    settings = build_settings()
    assert settings.ftp.password == "0123456"
    assert settings.station == "11"
