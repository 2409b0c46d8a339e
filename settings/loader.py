"""Build the one dynaconf settings object: packaged defaults, site files, secrets, environment."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from settings.dynaconf_plain import Dynaconf, ValidationError, get_history
from settings.legacy_ini import LegacyIniError, describe_legacy_source, read_legacy_config
from settings.problems import SettingsError, ca_file_problem, envvar
from settings.validators import SECRET_KEYS, validators_for

PACKAGE_DIR = Path(__file__).resolve().parent
DEFAULTS_FILE = PACKAGE_DIR / "settings.toml"
#: Where a deployment keeps its settings; `BEEMON_CONFIG_DIR` moves it (tests, containers).
SITE_DIR_DEFAULT = "/etc/beemon-uploader"
ENVIRONMENTS = ("development", "testing", "production")
SECRETS_NAME = ".secrets.toml"

log = logging.getLogger("beemon.settings")


def settings_files(config_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Files in the order they are layered: later files override earlier ones."""
    site = Path(config_dir or os.environ.get("BEEMON_CONFIG_DIR") or SITE_DIR_DEFAULT)
    return [
        str(DEFAULTS_FILE),
        str(site / "settings.toml"),
        str(site / ".secrets.toml"),
        str(Path.cwd() / ".secrets.toml"),
    ]


def build_settings(
    env: str | None = None,
    *,
    config_dir: str | os.PathLike[str] | None = None,
    legacy_ini: Any = None,
    validate: bool = True,
) -> Dynaconf:
    """A fresh, isolated, validated settings object for `env` (default: `BEEMON_ENV`, else development).

    Layers, lowest first: packaged defaults, `<config_dir>/settings.toml`, secrets files, the
    legacy configuration (when given: an INI path, a ConfigParser, an object with
    `get(section, option)`, a mapping of sections), `BEEMON_*` environment variables. Tests call
    this instead of mutating a global; the command line calls it once at start. Raises `SettingsError`.

    With a legacy configuration and no environment named (`env`, `BEEMON_ENV`), the environment is
    production: such a configuration is a station's, and development values (the embedded server,
    ./var/outbox) must never fill its gaps. It must then name the server, or the site settings or
    `BEEMON_FTP__HOST` must.
    """
    env = _environment(env, legacy_ini)
    files = settings_files(config_dir)
    _warn_readable_secrets(files)
    with _hidden_from_dynaconf([envvar(key) for key in TEXT_KEYS]):
        settings = _load(env, files, legacy_ini)
        if validate:
            validate_settings(settings, env)
    _keep_texts_as_given(settings)
    return settings


def _environment(env: str | None, legacy_ini: Any) -> str:
    """The environment asked for (`env`, else `BEEMON_ENV`), else production with a legacy configuration."""
    default_env = "production" if legacy_ini is not None else "development"
    env = (env or os.environ.get("BEEMON_ENV") or default_env).lower()
    if env not in ENVIRONMENTS:
        raise SettingsError(f"environment {env!r} is unknown: set BEEMON_ENV to one of {', '.join(ENVIRONMENTS)}")
    return env


def _warn_readable_secrets(files: Iterable[str]) -> None:
    for path, mode in readable_secrets(files):
        log.warning(
            "%s can be read by other users (mode %03o) and holds secrets such as the FTP password: run chmod 600 %s",
            path,
            mode,
            path,
        )


def _load(env: str, files: list[str], legacy_ini: Any) -> Dynaconf:
    """The layers read into one Dynaconf object, the legacy configuration on top; the station defaults to the host."""
    settings = Dynaconf(
        envvar_prefix="BEEMON",
        environments=True,
        env_switcher="BEEMON_ENV",
        env=env,
        settings_files=files,
        root_path=str(PACKAGE_DIR),
        load_dotenv=False,
    )
    if legacy_ini is not None:
        _apply_legacy_ini(settings, legacy_ini)
    if legacy_ini is not None and not str(settings.get("ftp.host") or "").strip():
        raise SettingsError(
            f"no FTP server configured: [ftp] host is missing in {describe_legacy_source(legacy_ini)}, and neither"
            f" {Path(files[1])} nor {envvar('ftp.host')} sets ftp.host; set the server in one of them"
        )
    if not settings.get("station") and envvar("station") not in os.environ:
        settings.set("station", socket.gethostname(), loader_identifier="host name")
    return settings


def readable_secrets(files: Iterable[str]) -> list[tuple[str, int]]:
    """(path, mode) of each secrets file that users other than its owner may read (group or world)."""
    found = []
    for path in files:
        if Path(path).name != SECRETS_NAME:
            continue
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue
        if mode & 0o044:
            found.append((path, mode))
    return found


def validate_settings(settings: Dynaconf, env: str) -> None:
    """Run every rule; the first failure becomes a `SettingsError` with one line."""
    settings.validators.register(*validators_for(env))
    try:
        settings.validators.validate_all()
    except ValidationError as error:
        raise SettingsError(str(error.details[0][1] if error.details else error).splitlines()[0]) from None
    if settings.upload.retry_base_seconds > settings.upload.retry_max_seconds:
        raise SettingsError(
            f"setting upload.retry_base_seconds = {settings.upload.retry_base_seconds!r} is above "
            f"upload.retry_max_seconds = {settings.upload.retry_max_seconds!r}: make the base the smaller"
        )
    if settings.ftp.tls != "none" and (problem := ca_file_problem(settings.ftp.ca_file)):
        raise SettingsError(problem)
    kind = settings.get("sink.kind", "ftp")
    if (problem := missing_extra(kind)) is not None:
        raise SettingsError(problem)
    if kind == "sftp" and not (settings.get("sftp.key_file") or settings.get("sftp.password")):
        raise SettingsError(
            'setting sftp.key_file or sftp.password is required with sink.kind = "sftp": name a private key file'
            " in settings.toml (BEEMON_SFTP__KEY_FILE), or put the password in .secrets.toml or BEEMON_SFTP__PASSWORD"
        )
    for key in SECRET_KEYS:
        if not settings.get(key):
            continue
        for entry in get_history(settings, key=key):
            source = str(entry.get("identifier", ""))
            if entry.get("loader") == "toml" and Path(source).name == "settings.toml" and entry.get("value"):
                raise SettingsError(f"{key} is set in {source}: move it to .secrets.toml (mode 600) or {envvar(key)}")


#: The module each optional sink needs, and the extra that installs it.
EXTRAS = {"sftp": "asyncssh", "s3": "boto3"}


def missing_extra(kind: str) -> str | None:
    """Why `sink.kind = kind` cannot run here (its library is not installed), or None."""
    module = EXTRAS.get(kind)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return (
        f'setting sink.kind = "{kind}" needs {module}, which is not installed:'
        f" pip install 'beemon-uploader[{kind}]' (or set sink.kind = \"ftp\")"
    )


#: Keys that are text whatever they look like: `BEEMON_FTP__PASSWORD=12345` is a password, not a number,
#: and `@format {env[HOME]}` or `@int 12` is a password too, not a dynaconf expression.
TEXT_KEYS = (
    "ftp.username",
    "ftp.password",
    "station",
    "sftp.username",
    "sftp.password",
    "s3.access_key_id",
    "s3.secret_access_key",
)


@contextlib.contextmanager
def _hidden_from_dynaconf(names: list[str]) -> Iterator[None]:
    """While dynaconf loads and validates, these variables hold a plain stand-in for their value.

    dynaconf reads every `BEEMON_*` variable as TOML and runs `@` tokens (`@format`, `@int`,
    `@jinja`...) in it, and again in a whole table whenever a key of it is set (validation sets
    defaults): a secret would be changed, expanded or refused. The stand-in is a TOML string that is
    empty exactly when the value is, so the rules that need a value still see whether it is there;
    `_keep_texts_as_given` puts the real characters in last. (Settings are built once, at start,
    before any thread of ours reads the environment.)
    """
    saved = {name: os.environ[name] for name in names if name in os.environ}
    for name, raw in saved.items():
        os.environ[name] = '"set"' if raw.strip() else json.dumps(raw)
    try:
        yield
    finally:
        os.environ.update(saved)


def _keep_texts_as_given(settings: Dynaconf) -> None:
    """For text keys set in the environment, take the variable's characters exactly as they are.

    `set` records the layer (for `config`), but it runs dynaconf's `@` tokens over the table, so
    the characters go into the store afterwards, once every `set` is done.
    """
    given = {key: os.environ[envvar(key)] for key in TEXT_KEYS if envvar(key) in os.environ}
    for key, raw in given.items():
        settings.set(key, "" if raw.lstrip().startswith("@") else raw, loader_identifier=f"environment {envvar(key)}")
    for key, raw in given.items():
        parent, _, leaf = key.rpartition(".")
        if parent:
            settings.store[parent.upper()][leaf] = raw
        else:
            settings.store[leaf.upper()] = raw


def _apply_legacy_ini(settings: Dynaconf, source: Any) -> None:
    """Layer the legacy configuration's values over the files but under `BEEMON_*` variables, which still win."""
    try:
        values = read_legacy_config(source)
    except LegacyIniError as error:
        raise SettingsError(str(error)) from None
    for key, value in values.items():
        if envvar(key) in os.environ:
            continue
        settings.set(key, value, loader_identifier=describe_legacy_source(source))
