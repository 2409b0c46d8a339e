"""Validation rules for every key: one readable line per bad value, naming what is allowed.

Each rule is a dynaconf `Validator` with a predicate and a message that names the key, the value,
what is allowed, and the environment variable that sets it, so the command line can print the
error as it is and exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from operators.choices import BACKFILL_ORDERS, CHECKSUMS, OBSERVER_KINDS, SINK_KINDS, TLS_MODES
from settings.dynaconf_plain import Validator
from settings.problems import envvar


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int_in(low: int, high: int | None = None) -> Callable[[Any], bool]:
    return lambda v: _is_int(v) and v >= low and (high is None or v <= high)


def _number_in(low: float, high: float | None = None, *, open_low: bool = False) -> Callable[[Any], bool]:
    def check(v: Any) -> bool:
        if not _is_number(v):
            return False
        above = v > low if open_low else v >= low
        return above and (high is None or v <= high)

    return check


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and v in choices


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _non_empty_str(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _str_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value)


#: key -> (predicate, what is allowed). The table is the contract the docs list.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "local_output_directory": (_non_empty_str, "a folder path"),
    "station": (_non_empty_str, "a station name such as rpi4-11"),
    "ftp.host": (_non_empty_str, 'a host name or address, or "embedded"'),
    "ftp.port": (_int_in(1, 65535), "an integer from 1 to 65535"),
    "ftp.username": (_is_str, "a text"),
    "ftp.password": (_is_str, "a text (from .secrets.toml or BEEMON_FTP__PASSWORD)"),
    "ftp.remote_root": (
        lambda v: isinstance(v, str) and v.startswith("/"),
        "an absolute remote folder such as /usr/local/bee/appmais",
    ),
    "ftp.tls": (_one_of(TLS_MODES), "one of " + ", ".join(TLS_MODES)),
    "ftp.ca_file": (_is_str, "a path to a PEM file, or empty for the system's authorities"),
    "ftp.verify": (_is_bool, "true or false"),
    "ftp.connections": (_int_in(1, 32), "an integer from 1 to 32"),
    "ftp.timeout_seconds": (_number_in(0, 3600, open_low=True), "a number of seconds above 0, at most 3600"),
    "ftp.idle_close_seconds": (_number_in(0, 86400, open_low=True), "a number of seconds above 0"),
    "sink.kind": (_one_of(SINK_KINDS), "one of " + ", ".join(SINK_KINDS)),
    "sftp.host": (_is_str, "a host name or address"),
    "sftp.port": (_int_in(1, 65535), "an integer from 1 to 65535"),
    "sftp.username": (_is_str, "a text"),
    "sftp.key_file": (_is_str, "a path to a private key file, or empty"),
    "sftp.known_hosts": (_is_str, "a path to a known_hosts file, or empty for ~/.ssh/known_hosts"),
    "sftp.remote_root": (
        lambda v: isinstance(v, str) and v.startswith("/"),
        "an absolute remote folder such as /usr/local/bee/appmais",
    ),
    "sftp.connections": (_int_in(1, 32), "an integer from 1 to 32"),
    "sftp.timeout_seconds": (_number_in(0, 3600, open_low=True), "a number of seconds above 0, at most 3600"),
    "s3.endpoint_url": (
        lambda v: isinstance(v, str) and (v == "" or v.startswith(("http://", "https://"))),
        "an http:// or https:// address, or empty for AWS",
    ),
    "s3.region": (_non_empty_str, "a region name such as us-east-1"),
    "s3.bucket": (_is_str, "a bucket name"),
    "s3.prefix": (_is_str, "a key prefix such as appmais, or empty"),
    "s3.access_key_id": (_is_str, "a text"),
    "s3.connections": (_int_in(1, 32), "an integer from 1 to 32"),
    "s3.multipart_threshold_mb": (_number_in(5, 5 * 1024 * 1024), "a number of MiB, at least 5"),
    "s3.part_size_mb": (_number_in(5, 5 * 1024), "a number of MiB from 5 to 5120"),
    "s3.timeout_seconds": (_number_in(0, 3600, open_low=True), "a number of seconds above 0, at most 3600"),
    "upload.debounce_seconds": (_number_in(0, 3600), "a number of seconds from 0 to 3600"),
    "upload.atomic_rename": (_is_bool, "true or false"),
    "upload.verify_size": (_is_bool, "true or false"),
    "upload.delete_after_upload": (_is_bool, "true or false"),
    "upload.retry_base_seconds": (_number_in(0, 3600, open_low=True), "a number of seconds above 0"),
    "upload.retry_max_seconds": (_number_in(0, 86400, open_low=True), "a number of seconds above 0"),
    "upload.bandwidth_limit_kbps": (_number_in(0), "a number of kilobits per second, 0 for unlimited"),
    "upload.backfill_order": (_one_of(BACKFILL_ORDERS), "one of " + ", ".join(BACKFILL_ORDERS)),
    "upload.orphan_csv_after_hours": (
        _number_in(0, 8760, open_low=True),
        "a number of hours above 0 (a past day's .csv this long quiet without its .final is sent as the day's file)",
    ),
    "upload.ignore_patterns": (_str_list, "a list of glob patterns such as ['*.tmp']"),
    "upload.stop_deadline_seconds": (_number_in(0, 3600), "a number of seconds from 0 to 3600"),
    "upload.checksum": (_one_of(CHECKSUMS), "one of " + ", ".join(CHECKSUMS)),
    "upload.manifest_interval_seconds": (_number_in(0, 86400, open_low=True), "a number of seconds above 0"),
    "watch.observer": (_one_of(OBSERVER_KINDS), "one of " + ", ".join(OBSERVER_KINDS)),
    "watch.polling_interval_seconds": (_number_in(0, 3600, open_low=True), "a number of seconds above 0"),
    "watch.rescan_interval_seconds": (_number_in(0), "a number of seconds, 0 to rescan only at start"),
    "watch.min_free_percent": (_number_in(0, 100), "a percentage from 0 to 100 (0: no disk warning)"),
    "metrics.port": (_int_in(0, 65535), "an integer from 1 to 65535, or 0 for no metrics endpoint"),
}

#: Keys checked only when the sink is FTP (an SFTP or S3 station leaves the FTP server unnamed).
ONLY_FOR_FTP = frozenset({"ftp.host"})
#: Keys that must be set (non-empty) outside the development environment, when the sink is FTP.
REQUIRED_OUTSIDE_DEVELOPMENT = ("ftp.host", "ftp.username", "ftp.password")
#: Keys that must be set (non-empty) in every environment when `sink.kind` names their table.
REQUIRED_BY_KIND = {
    "sftp": ("sftp.host", "sftp.username"),
    "s3": ("s3.bucket", "s3.access_key_id", "s3.secret_access_key"),
}
#: Secrets: from .secrets.toml or the environment, never settings.toml.
SECRET_KEYS = ("ftp.password", "sftp.password", "s3.secret_access_key")


def _message(key: str, allowed: str) -> str:
    return f"setting {key} = {{value!r}} is not valid: it must be {allowed}; fix it in settings.toml or {envvar(key)}"


def validators_for(env: str) -> list[Validator]:
    """The validators in force for `env`: credentials required outside development, every key typed."""
    validators = _required(env) + [
        Validator(
            key,
            must_exist=True,
            condition=predicate,
            when=Validator("sink.kind", eq="ftp") if key in ONLY_FOR_FTP else None,
            messages={
                "must_exist_true": f"setting {key} is missing: set it in settings.toml or {envvar(key)}",
                "condition": _message(key, allowed),
            },
        )
        for key, (predicate, allowed) in RULES.items()
        if key != "ftp.password"
    ]
    validators += [
        Validator(
            key,
            condition=_is_str,
            messages={
                "condition": f"setting {key} is not valid: it must be a text; fix it in .secrets.toml or {envvar(key)}"
            },
        )
        for key in SECRET_KEYS[1:]
    ]
    validators += _required_by_kind()
    validators.append(
        Validator(
            "ftp.password",
            condition=RULES["ftp.password"][0],
            messages={
                "condition": (
                    "setting ftp.password is not valid: it must be a text; "
                    "fix it in .secrets.toml or BEEMON_FTP__PASSWORD"
                ),
            },
        )
    )
    return validators


def _required_by_kind() -> list[Validator]:
    """The keys the chosen sink needs, whatever the environment (no embedded SFTP or S3 server stands in)."""
    validators = []
    for kind, keys in REQUIRED_BY_KIND.items():
        for key in keys:
            where = f".secrets.toml or {envvar(key)}" if key in SECRET_KEYS else f"settings.toml or {envvar(key)}"
            message = f'setting {key} is required with sink.kind = "{kind}": set it in {where}'
            validators.append(
                Validator(
                    key,
                    must_exist=True,
                    condition=_non_empty_str,
                    when=Validator("sink.kind", eq=kind),
                    messages={"must_exist_true": message, "condition": message},
                )
            )
    return validators


def _required(env: str) -> list[Validator]:
    """Checked first, so a missing credential is reported as missing rather than as a bad value."""
    if env == "development":
        return []
    validators = []
    for key in REQUIRED_OUTSIDE_DEVELOPMENT:
        where = ".secrets.toml or BEEMON_FTP__PASSWORD" if key == "ftp.password" else f"settings.toml or {envvar(key)}"
        message = f"setting {key} is required in the {env} environment: set it in {where}"
        validators.append(
            Validator(
                key,
                must_exist=True,
                condition=_non_empty_str,
                when=Validator("sink.kind", eq="ftp"),
                messages={"must_exist_true": message, "condition": message},
            )
        )
    return validators
