"""`run`'s settings, read in a short-lived child process: the parent that runs for months never imports dynaconf.

dynaconf, with what it imports (its vendored box, ruamel.yaml, click and dotenv, its Flask glue's
`importlib.metadata` and email parser, decimal, csv), is about 4 MB of an idle station's memory
(issue 17's target for all of `run` is 45 MB), held for the whole life of a process that reads its
settings once at start and again on SIGHUP. So `run` reads them in a child: the same code as
every other command (`build_settings`, `options_from_settings`), logging as the parent does, which
hands back the plain `UploaderOptions`, or the one line of a `SettingsError`, and exits. The child
starts at once; the parent imports the stream meanwhile and asks for the answer when it needs it.

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

#: The child's program: the request, then the parent's module search path (put first, as spawn hands it on).
_CHILD = "import sys; sys.path[:0] = sys.argv[2:]; from pipeline.app.settings_apart import child; child(sys.argv[1])"


class SettingsReader:
    """A child reading the settings of `request` (env, config_dir, legacy_ini, log_format, log_level).

    The request holds no secret (the password is read by the child, from the files and the
    environment it inherits) and goes on the child's command line; the answer comes back on its stdout.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, json.dumps(request), *[entry for entry in sys.path if entry]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )

    def options(self) -> UploaderOptions:
        """Wait for the child's answer. Raises `SettingsError` with its line, or saying that it failed
        otherwise (its traceback is above, on the stderr they share): at start, exit code 2; on
        SIGHUP, the running settings stay."""
        answer, _ = self._child.communicate()
        if self._child.returncode != 0 or not answer:
            raise SettingsError(
                f"the settings could not be read: the process that reads them ended with code {self._child.returncode}"
                " (its error is above)"
            )
        kind, value = pickle.loads(answer)
        if kind == "error":
            raise SettingsError(value)
        return value


def read_options_apart(request: dict[str, Any]) -> UploaderOptions:
    """The options of `request`, read by a child (see `SettingsReader`)."""
    return SettingsReader(request).options()


def child(request_text: str) -> None:
    """The child's side: read the settings of the request, write one pickled answer to stdout."""
    from pipeline.app.logs import configure_logging
    from pipeline.app.options import options_from_settings
    from settings import build_settings

    request = json.loads(request_text)
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
