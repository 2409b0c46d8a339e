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

import contextlib
import json
import os
import pickle
import signal
import subprocess
import sys
from typing import Any

from pipeline.app.options import UploaderOptions
from settings import SettingsError

#: The child's program: the request, then the parent's module search path (put first, as spawn hands it on).
_CHILD = "import sys; sys.path[:0] = sys.argv[2:]; from pipeline.app.settings_apart import child; child(sys.argv[1])"


class ReaderFailed(RuntimeError):
    """The reader ended without an answer (killed, crashed, or could not start): no setting was found bad.

    Not a `SettingsError`: that one is exit code 2, which systemd does not restart
    (`RestartPreventExitStatus=2`), and a reader killed at boot (the OOM killer) would leave the
    station's outbox on it for good. At start: one line and exit code 1 (restarted); on SIGHUP the
    running settings stay.
    """


class SettingsReader:
    """A child reading the settings of `request` (env, config_dir, legacy_ini, log_format, log_level).

    The request holds no secret (the password is read by the child, from the files and the
    environment it inherits) and goes on the child's command line; the answer comes back on its stdout.
    """

    def __init__(self, request: dict[str, Any]) -> None:
        self._child: subprocess.Popen[bytes] | None = None
        self._not_started: OSError | None = None
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-c", _CHILD, json.dumps(request), *[entry for entry in sys.path if entry]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
            )
        except OSError as error:  # no memory or no process slot left, for now: said by `options`
            self._not_started = error

    def options(self) -> UploaderOptions:
        """Wait for the child's answer. Raises `SettingsError` with its line (a bad setting: at start, exit
        code 2; on SIGHUP, the running settings stay), or `ReaderFailed` when there is no answer."""
        if self._child is None:
            raise ReaderFailed(
                f"the settings could not be read: the process that reads them did not start ({self._not_started})"
            )
        answer, _ = self._child.communicate()
        code = self._child.returncode
        if code != 0 or not answer:
            raise ReaderFailed(f"the settings could not be read: the process that reads them {_ended(code)}")
        kind, value = pickle.loads(answer)
        if kind == "error":
            raise SettingsError(value)
        return value


def _ended(code: int) -> str:
    """How the reader ended, for the line that says so."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"ended with code {code} (its error is above)"


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
