"""The options every command takes (settings source, log format), accepted before or after the command.

argparse reads options given after a command only if that command's parser knows them; the
copies on each command parser default to "not given" (`SUPPRESS`), so they never overwrite a
value given before the command with a default.
"""

from __future__ import annotations

import argparse

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool = True) -> None:
    """Add the global options; `defaults=False` for the copies on the command parsers."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--env",
        default=default(None),
        help="settings environment (development, testing, production); default BEEMON_ENV",
    )
    parser.add_argument(
        "--legacy-ini", metavar="PATH", default=default(None), help="read a legacy beemon-config.ini over the settings"
    )
    parser.add_argument(
        "--config-dir",
        metavar="DIR",
        default=default(None),
        help="site settings folder (default /etc/beemon-uploader)",
    )
    parser.add_argument(
        "--log-format", choices=("text", "json"), default=default("text"), help="log lines for people or JSON"
    )
    parser.add_argument("--log-level", default=default("INFO"), choices=LEVELS)
