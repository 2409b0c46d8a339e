"""`run`'s settings, read in a short-lived child process: the parent that runs for months never imports dynaconf.

dynaconf, with what it imports (its vendored box, ruamel.yaml, click and dotenv, its Flask glue's
`importlib.metadata` and email parser, decimal, csv), is about 4 MB of an idle station's memory
(issue 17's target for all of `run` is 45 MB), held for the whole life of a process that reads its
settings once at start and again on SIGHUP. So `run` reads them in a child: the same code as
every other command (`build_settings`, `options_from_settings`), logging as the parent does, which
hands back the plain `UploaderOptions`, or the one line of a `SettingsError`, and exits. The child
starts at once; the parent imports the stream meanwhile and asks for the answer when it needs it.

A reader that gives no answer within `READER_TIMEOUT_SECONDS` (a settings file on a hung network
mount, a stopped child) is killed: `run` must still exit at start, and go on uploading (and stop
when told) on SIGHUP.

`run --once`, `--dry-run` and the other commands end soon after: they read in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from pipeline.app.options import UploaderOptions
from settings import SettingsError

#: The child's program: the request, then the parent's module search path (put first, as spawn hands it on).
_CHILD = "import sys; sys.path[:0] = sys.argv[2:]; from pipeline.app.settings_apart import child; child(sys.argv[1])"


#: How long `run` waits for its settings reader's answer before it kills the reader (`ReaderFailed`).
#: The read takes 0.2 s on a development machine, under a second with no compiled bytecode; a
#: Raspberry Pi is some ten times slower, and at boot its SD card is cold and the unit's idle I/O class
#: puts the reader behind the recorder: tens of seconds are slow but sound, so the bound is generous.
#: It stays well under systemd's start timeout (90 s by default; the unit sets none), which counts until
#: READY=1, so that a hung reader at start ends in this process's own line and exit code 1, not a
#: silent kill; and under the unit's `TimeoutStopSec=60`, should a stop ever have to wait for it.
READER_TIMEOUT_SECONDS = 45.0

#: Test only: an environment variable whose value (seconds) replaces `READER_TIMEOUT_SECONDS`, so that
#: a test of a hung reader need not wait 45 s. Not a setting: a station has no reason to change the bound.
READER_TIMEOUT_TEST_VARIABLE = "BEEMON_TEST_READER_TIMEOUT_SECONDS"

#: How often a wait for the reader asks whether to give up (a stop came): a stop waits at most this long.
_GIVE_UP_POLL_SECONDS = 0.2

#: How often a reader that closed its answer is looked at until it has ended (it is exiting then).
_EXIT_POLL_SECONDS = 0.005

#: How long a killed reader may take to end before it is left behind (stuck in the kernel on a hung mount).
_REAP_SECONDS = 5.0


class ReaderFailed(RuntimeError):
    """The reader gave no answer (killed, crashed, could not start, hung past the bound, or was cut short
    by a stop): no setting was found bad.

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

    def options(self, give_up: Callable[[], bool] | None = None) -> UploaderOptions:
        """Wait for the child's answer, at most `reader_timeout()` seconds. Raises `SettingsError` with its line
        (a bad setting: at start, exit code 2; on SIGHUP, the running settings stay), or `ReaderFailed` when
        there is no answer: the child ended without one, gave none in time, or `give_up()` said to stop
        waiting (asked every `_GIVE_UP_POLL_SECONDS`). A child that did not answer is killed."""
        if self._child is None:
            raise ReaderFailed(
                f"the settings could not be read: the process that reads them did not start ({self._not_started})"
            )
        answer = self._answer(reader_timeout(), give_up)
        code = self._child.returncode
        if code != 0 or not answer:
            raise ReaderFailed(f"the settings could not be read: the process that reads them {_ended(code)}")
        kind, value = pickle.loads(answer)
        if kind == "error":
            raise SettingsError(value)
        return value

    def _answer(self, timeout: float, give_up: Callable[[], bool] | None) -> bytes:
        """The child's stdout once it has ended; `ReaderFailed` (the child killed) past `timeout` or on `give_up()`.

        Waits on the pipe, then on the exit, with `select` in short slices, not `Popen.wait(timeout)`: that
        one sleeps with `time.sleep`, which fails (EINVAL) under libfaketime, as the wall-clock tests run."""
        child = self._child
        assert child is not None and child.stdout is not None
        deadline = time.monotonic() + timeout
        answer = bytearray()
        with selectors.DefaultSelector() as waiting:
            waiting.register(child.stdout, selectors.EVENT_READ)
            while True:
                if waiting.get_map():  # the answer is still coming
                    if waiting.select(max(0.0, min(deadline - time.monotonic(), _GIVE_UP_POLL_SECONDS))):
                        chunk = os.read(child.stdout.fileno(), 1 << 16)
                        if chunk:
                            answer += chunk
                        else:
                            waiting.unregister(child.stdout)
                        continue
                elif _exited(child, waiting, time.monotonic() + _GIVE_UP_POLL_SECONDS):
                    child.stdout.close()
                    return bytes(answer)
                if give_up is not None and give_up():
                    self._kill(waiting)
                    raise ReaderFailed("the settings reader was killed before it answered, to stop at once")
                if time.monotonic() >= deadline:
                    self._kill(waiting)
                    raise ReaderFailed(
                        f"the settings could not be read: the process that reads them gave no answer within"
                        f" {timeout:g} s and was killed (a settings file on a hung network mount, or a machine far"
                        " too busy? `beemon-uploader config` reads them the same way)"
                    )

    def _kill(self, waiting: selectors.BaseSelector) -> None:
        """Kill the child and reap it; one stuck in the kernel (a hung mount) is left to end on its own."""
        assert self._child is not None and self._child.stdout is not None
        self._child.kill()
        _exited(self._child, waiting, time.monotonic() + _REAP_SECONDS)
        self._child.stdout.close()


def _exited(child: subprocess.Popen[bytes], waiting: selectors.BaseSelector, until: float) -> bool:
    """Whether `child` ends (is reaped) by the monotonic time `until`; `waiting` (its pipe not watched) paces."""
    with contextlib.suppress(KeyError):
        waiting.unregister(child.stdout)
    while child.poll() is None:
        if time.monotonic() >= until:
            return False
        waiting.select(_EXIT_POLL_SECONDS)  # nothing registered: a pause, however the wall clock goes
    return True


def reader_timeout() -> float:
    """`READER_TIMEOUT_SECONDS`, or the test's value of `READER_TIMEOUT_TEST_VARIABLE` (the one place that reads it)."""
    given = os.environ.get(READER_TIMEOUT_TEST_VARIABLE)
    return float(given) if given else READER_TIMEOUT_SECONDS


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
