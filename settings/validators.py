"""Validation rules for every key: one readable line per bad value, naming what is allowed.

Each rule is a dynaconf `Validator` with a predicate and a message that names the key, the value,
what is allowed, and the environment variable that sets it, so the command line can print the
error as it is and exit 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dynaconf import Validator

TLS_MODES = ("none", "explicit", "implicit")
OBSERVERS = ("inotify", "polling")
BACKFILL_ORDERS = ("newest", "oldest")
#: upload.checksum (pipeline.ftp.params.UploadPolicy checks the same values; tests/settings asserts they agree)
CHECKSUMS = ("sha256", "none")


def envvar(key: str) -> str:
    """The environment variable that overrides `key` (`ftp.port` -> `BEEMON_FTP__PORT`)."""
    return "BEEMON_" + key.upper().replace(".", "__")


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
    "watch.observer": (_one_of(OBSERVERS), "one of " + ", ".join(OBSERVERS)),
    "watch.polling_interval_seconds": (_number_in(0, 3600, open_low=True), "a number of seconds above 0"),
    "watch.rescan_interval_seconds": (_number_in(0), "a number of seconds, 0 to rescan only at start"),
    "metrics.port": (_int_in(0, 65535), "an integer from 1 to 65535, or 0 for no metrics endpoint"),
}

#: Keys that must be set (non-empty) outside the development environment.
REQUIRED_OUTSIDE_DEVELOPMENT = ("ftp.host", "ftp.username", "ftp.password")


def _message(key: str, allowed: str) -> str:
    return f"setting {key} = {{value!r}} is not valid: it must be {allowed}; fix it in settings.toml or {envvar(key)}"


def validators_for(env: str) -> list[Validator]:
    """The validators in force for `env`: credentials required outside development, every key typed."""
    validators = _required(env) + [
        Validator(
            key,
            must_exist=True,
            condition=predicate,
            messages={
                "must_exist_true": f"setting {key} is missing: set it in settings.toml or {envvar(key)}",
                "condition": _message(key, allowed),
            },
        )
        for key, (predicate, allowed) in RULES.items()
        if key != "ftp.password"
    ]
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
                messages={"must_exist_true": message, "condition": message},
            )
        )
    return validators
