"""The `beemon-uploader` command line: parse, load settings once, dispatch, map errors to exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline import exit_codes
from settings import SettingsError, build_settings, describe_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beemon-uploader",
        description="Move finished sensor files from a station's outbox to an FTP(S) server.",
        epilog="Exit codes: 0 success, 1 failures remain, 2 bad usage or settings.",
    )
    parser.add_argument("--env", help="settings environment (development, testing, production); default BEEMON_ENV")
    parser.add_argument("--legacy-ini", metavar="PATH", help="read a legacy beemon-config.ini over the settings")
    parser.add_argument("--config-dir", metavar="DIR", help="site settings folder (default /etc/beemon-uploader)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("config", help="print the effective settings, the layer that set each, secrets masked")
    return parser


def _config(args: argparse.Namespace) -> int:
    settings = build_settings(args.env, config_dir=args.config_dir, legacy_ini=args.legacy_ini)
    rows = describe_settings(settings)
    width = max(len(key) for key, _, _ in rows)
    print(f"environment: {settings.current_env.lower()}")
    for key, shown, layer in rows:
        print(f"{key:<{width}}  {shown}  <- {layer}")
    return exit_codes.OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_codes.OK if exit_.code in (0, None) else exit_codes.BAD_USAGE
    handlers = {"config": _config}
    try:
        return handlers[args.command](args)
    except SettingsError as error:
        print(f"beemon-uploader: {error}", file=sys.stderr)
        return exit_codes.BAD_USAGE


if __name__ == "__main__":
    sys.exit(main())
