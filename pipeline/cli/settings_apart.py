"""`run`'s settings, read in a short-lived child process: the parent that runs for months never imports dynaconf.

dynaconf, with what it imports (its vendored box, ruamel.yaml, click and dotenv, its Flask glue's
`importlib.metadata` and email parser, decimal, csv), is some 6 MB of an idle station's memory
(issue 17's target for all of `run` is 45 MB), held for the whole life of a process that reads its
settings once at start and again on SIGHUP. So `run` reads them in a child: the same code as
every other command (`build_settings`, `options_from_settings`), logging as the parent does, which
hands back the plain `UploaderOptions`, or the one line of a `SettingsError`, and exits.

`run --once`, `--dry-run` and the other commands end soon after: they read in-process.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from typing import Any

from pipeline.app.options import UploaderOptions
from settings import SettingsError

#: The child's program: the parent's module search path first (as spawn hands it on), then `child`.
_CHILD = "import sys; sys.path[:0] = sys.argv[1:]; from pipeline.cli.settings_apart import child; child()"


def read_options_apart(request: dict[str, Any]) -> UploaderOptions:
    """The options of `request` (env, config_dir, legacy_ini, log_format, log_level), read by a child.

    Raises `SettingsError` with the child's line, or saying that the child failed otherwise (its
    traceback is above, on the stderr they share): at start, exit code 2; on SIGHUP, the running
    settings stay.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *[entry for entry in sys.path if entry]],
        input=json.dumps(request).encode(),
        stdout=subprocess.PIPE,
        check=False,
    )
    if done.returncode != 0 or not done.stdout:
        raise SettingsError(
            f"the settings could not be read: the process that reads them ended with code {done.returncode}"
            " (its error is above)"
        )
    kind, value = pickle.loads(done.stdout)
    if kind == "error":
        raise SettingsError(value)
    return value


def child() -> None:
    """The child's side: read the request from stdin, write one pickled answer to stdout."""
    from pipeline.app.logs import configure_logging
    from pipeline.app.options import options_from_settings
    from settings import build_settings

    request = json.loads(sys.stdin.read())
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever else prints goes to stderr, as in the parent: stdout carries only the answer
    configure_logging(request["log_format"], request["log_level"])
    try:
        settings = build_settings(request["env"], config_dir=request["config_dir"], legacy_ini=request["legacy_ini"])
        result: tuple[str, Any] = ("options", options_from_settings(settings))
    except SettingsError as error:
        result = ("error", str(error))
    with answer:
        answer.write(pickle.dumps(result))
