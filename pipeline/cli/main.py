"""The `beemon-uploader` command line: parse, load settings once, dispatch, map errors to exit codes.

Exit codes: 0 success, 1 failures remain (or a check failed), 2 bad usage or settings, or another
uploader already works the outbox.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import logging
import queue
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from pipeline.app.logs import configure_logging, spare_unshown_fields
from pipeline.cli import exit_codes
from pipeline.outbox.lock import OutboxLockError
from pipeline.sink.main_guard import children_need_no_main_module

if TYPE_CHECKING:  # the settings library and the options load after the arguments are parsed (see `_run_once`)
    from pipeline.app.options import UploaderOptions

log = logging.getLogger("beemon.cli")


def _positive(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def _date(text: str) -> str:
    """A --date value: a real calendar day written YYYY-MM-DD."""
    try:
        return datetime.date.fromisoformat(text).isoformat() if len(text) == 10 else _bad_date(text)
    except ValueError:
        return _bad_date(text)


def _bad_date(text: str) -> str:
    raise argparse.ArgumentTypeError(f"{text!r} is not a day written YYYY-MM-DD")


class _ShowVersion(argparse.Action):
    """`--version`: the version (`pipeline.app.version`)."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any) -> None:
        from pipeline.app.version import VERSION

        print(f"beemon-uploader {VERSION}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    from pipeline.cli.global_options import add_global_options

    parser = argparse.ArgumentParser(
        prog="beemon-uploader",
        description="Move finished sensor files from a station's outbox to an FTP(S) or SFTP server or an S3 bucket.",
        epilog="Exit codes: 0 success, 1 failures remain, 2 bad usage or settings, or the outbox is in use.",
    )
    parser.add_argument("--version", action=_ShowVersion, nargs=0, help="show the version and exit")
    add_global_options(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_run(commands)
    commands.add_parser("check", help="validate settings, connect, log in, write and remove a probe file")

    demo = commands.add_parser("demo", help="embedded server + simulated station + the real uploader, then a summary")
    demo.add_argument("--duration", type=_positive, default=30.0, help="seconds the station writes (default 30)")
    demo.add_argument("--var", default="./var", help="folder for outbox/ and ftp-root/ (default ./var)")

    _add_verify(commands)
    commands.add_parser("config", help="print the effective settings, the layer that set each, secrets masked")

    status = commands.add_parser(
        "status", help="what the running uploader is doing (its status file), or, with none running, the outbox"
    )
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    for command in commands.choices.values():
        add_global_options(command, defaults=False)  # global options also after the command
    return parser


def _add_run(commands: Any) -> None:
    """`run` and its options (`--once`, `--dry-run`, the statistics, the simulated station)."""
    run = commands.add_parser(
        "run", help="watch the outbox and upload until stopped (SIGTERM/SIGINT: exit 0; SIGHUP: reload the settings)"
    )
    run.add_argument("--once", action="store_true", help="upload what is ready now, then exit (no watching)")
    run.add_argument(
        "--max-retries",
        type=int,
        default=5,
        help="with --once: attempts after the first, per file and to reach the server (default 5)",
    )
    run.add_argument("--stats-interval", type=_positive, default=60.0, help="seconds between statistics lines (0: off)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="(implies --once) list local -> remote for every ready file, and what would be skipped; change nothing",
    )
    run.add_argument(
        "--simulate-station",
        action="store_true",
        help="also run a simulated station writing into the outbox (to watch files arrive; not for a real station)",
    )


def _add_verify(commands: Any) -> None:
    """`verify` and its options (`--date`, repeatable; `--station`)."""
    verify = commands.add_parser(
        "verify", help="compare the server's files with each day's SHA256SUMS (read-only; exit 1 on any problem)"
    )
    verify.add_argument(
        "--date",
        action="append",
        type=_date,
        metavar="YYYY-MM-DD",
        help="a day to check (repeatable; default: every day on the server)",
    )
    verify.add_argument("--station", help="the station's folder to check (default: this station)")


def _settings(args: argparse.Namespace):  # noqa: ANN202 - a dynaconf object
    from settings import build_settings

    return build_settings(args.env, config_dir=args.config_dir, legacy_ini=args.legacy_ini)


def _settings_request(args: argparse.Namespace) -> dict[str, str | None]:
    """What a child needs to read the settings as `_settings` does, and to log as this process does."""
    return {
        "env": args.env,
        "config_dir": args.config_dir,
        "legacy_ini": args.legacy_ini,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }


def _config(args: argparse.Namespace) -> int:
    from settings import describe_settings

    settings = _settings(args)
    rows = describe_settings(settings)
    width = max(len(key) for key, _, _ in rows)
    print(f"environment: {settings.current_env.lower()}")
    for key, shown, layer in rows:
        print(f"{key:<{width}}  {shown}  <- {layer}")
    return exit_codes.OK


def _run(args: argparse.Namespace) -> int:
    def load_options() -> UploaderOptions:
        from pipeline.app.options import options_from_settings

        return replace(options_from_settings(_settings(args)), stats_interval=args.stats_interval)

    if args.once and not args.dry_run:
        return _run_once(args, load_options)
    if args.dry_run:
        from pipeline.cli.dry_run import dry_run

        return dry_run(load_options())
    return _watch(args)


def _watch(args: argparse.Namespace) -> int:
    """`run`, watching for months: a child reads the settings, at start and on SIGHUP, so that this process
    never holds dynaconf (`pipeline.app.settings_apart`, issue 17).

    The signals are heard from the first moment: a stop (SIGTERM, SIGINT) while the settings are read
    ends the start with exit 0, as a stop does later (their default would kill the process: a
    supervisor's stop right after a start read as a crash), and a SIGHUP then (whose default kills it
    too) is kept for once it runs.
    """
    # A SimpleQueue: the signal handlers below put into it, and its put is reentrant (a `queue.Queue`'s lock,
    # held by this thread at the moment a signal lands, would deadlock the handler's put).
    commands: queue.SimpleQueue[str] = queue.SimpleQueue()
    stops: list[int] = []  # the stops heard before the run began (a list's append is safe in a handler)

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stops.append(signum)
        commands.put("stop")

    def request_reload(signum: int, _frame: FrameType | None) -> None:
        log.info("received SIGHUP: reloading the settings")
        commands.put("reload")

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, request_reload)

    from pipeline.app.settings_apart import ReaderFailed, SettingsReader
    from settings import SettingsError

    def read_apart(reader: SettingsReader | None = None, give_up: Callable[[], bool] | None = None) -> UploaderOptions:
        options = (reader or SettingsReader(_settings_request(args))).options(give_up)
        return replace(options, stats_interval=args.stats_interval)

    def reread() -> UploaderOptions:
        """On SIGHUP: a reader that gave no answer fails the reload as a bad setting does (the running ones stay);
        a stop (SIGTERM, SIGINT) that comes while it reads does not wait for it."""
        try:
            return read_apart(give_up=uploader.stop_pending)
        except ReaderFailed as failure:
            raise SettingsError(str(failure)) from None

    reader = SettingsReader(_settings_request(args))  # it reads while this process imports the stream
    from pipeline.app.uploader import Uploader

    try:
        options = read_apart(reader, give_up=lambda: bool(stops))
    except ReaderFailed as failure:  # not a bad setting: exit 1, so that the supervisor starts it again
        if stops:
            log.info("stopped before it started")
            return exit_codes.OK
        print(f"beemon-uploader: {failure}", file=sys.stderr)
        return exit_codes.NOT_STARTED
    if stops:  # told to stop while the settings were read: nothing was started
        log.info("stopped before it started")
        return exit_codes.OK
    uploader = Uploader(commands, options)
    uploader.reload_options = reread
    uploader.lock_outbox()  # before anything else: a second instance leaves without touching the outbox
    station = None
    if args.simulate_station:
        from pipeline.dev.station_simulator import StationSimulator

        station = StationSimulator(Path(options.outbox), station=options.station).start()
        log.info(
            "a simulated station writes into %s (audio every 3 s, video every 5 s, a CSV line a second)", options.outbox
        )
    try:
        uploader.run()
    finally:
        if station is not None:
            station.stop()
    log.info("stopped")
    return exit_codes.OK


def _run_once(args: argparse.Namespace, load_options: Callable[[], UploaderOptions]) -> int:
    """`run --once`: the sink's process starts first, its start-up beside the settings' (`pipeline.sink.prestart`);
    whatever ends the run (a bad setting too) stops it if it never got its task."""
    from pipeline.sink.prestart import start_early_sink

    early = start_early_sink()
    try:
        options = load_options()
        from pipeline.cli.once import upload_once

        return upload_once(options, max_retries=args.max_retries, progress=sys.stderr.isatty(), early=early)
    finally:
        if early is not None:
            early.close()


def _check(args: argparse.Namespace) -> int:
    from pipeline.app.options import options_from_settings
    from pipeline.cli.check import run_check

    return run_check(options_from_settings(_settings(args)))


def _verify(args: argparse.Namespace) -> int:
    from pipeline.app.options import options_from_settings
    from pipeline.cli.verify import run_verify

    return run_verify(options_from_settings(_settings(args)), args.date, args.station)


def _demo(args: argparse.Namespace) -> int:
    from pipeline.app.options import options_from_settings
    from pipeline.cli.demo import run_demo

    var = Path(args.var)
    options = options_from_settings(_settings(args))
    return run_demo(options, var=var, duration=args.duration)


def _status(args: argparse.Namespace) -> int:
    from pipeline.cli.status import show_status

    return show_status(str(_settings(args).local_output_directory), as_json=args.json)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_codes.OK if exit_.code in (0, None) else exit_codes.BAD_USAGE
    configure_logging(args.log_format, args.log_level)
    children_need_no_main_module()  # the sink starts without loading this command line again
    handlers = {"config": _config, "run": _run, "check": _check, "demo": _demo, "status": _status, "verify": _verify}
    try:
        return handlers[args.command](args)
    except OutboxLockError as error:
        print(f"beemon-uploader: {error}", file=sys.stderr)
        return exit_codes.OUTBOX_IN_USE
    except Exception as error:
        if not _is_settings_error(error):
            raise
        print(f"beemon-uploader: {error}", file=sys.stderr)
        return exit_codes.BAD_USAGE


def _is_settings_error(error: Exception) -> bool:
    """Whether `error` is a `SettingsError` (a command that raises one has loaded the settings library)."""
    settings = sys.modules.get("settings")
    return settings is not None and isinstance(error, settings.SettingsError)


def console() -> int:
    """The `beemon-uploader` script (and `python -m pipeline.cli`): `main`, then the heap frozen for the exit.

    By the time a command returns, everything it started is stopped and released (the sink joined,
    the outbox lock freed; logs are flushed at exit). The interpreter's teardown would still
    collect every object the imported libraries built: 50-200 ms on a busy two-core machine, a quarter of a
    `run --once` on an empty outbox, for memory the process gives back anyway. Frozen objects are
    left to the exit. Not in `main`: tests and orchestrators call that in a process that goes on
    (nor, for the same reason, are the log records' unshown fields spared there: `spare_unshown_fields`).
    """
    spare_unshown_fields()
    code = main()
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(console())
