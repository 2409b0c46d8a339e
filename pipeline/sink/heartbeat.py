"""The sink process's heartbeat: a counter in shared memory that its child bumps while it works.

A beat first takes the job board's lock (`probe`), so a deadlocked board stops the beats as a
frozen or killed process does; the parent reads the counter without a message round trip (a
stopped child could not answer one) and feeds the systemd watchdog only while it moves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from multiprocessing.context import BaseContext
from typing import Any

#: Seconds between beats.
BEAT_SECONDS = 1.0


class Heartbeat:
    """Made in the parent, pickled to the child; `start` in the child, `beats` anywhere."""

    def __init__(self, context: BaseContext) -> None:
        self._count: Any = context.Value("Q", 0, lock=False)  # one writer, the child

    def beats(self) -> int:
        return int(self._count.value)

    def start(self, probe: Callable[[], object], stop: threading.Event, interval: float = BEAT_SECONDS) -> None:
        """Beat every `interval` seconds in a daemon thread of the child until `stop` is set."""

        def beat() -> None:
            while not stop.wait(interval):
                probe()
                self._count.value += 1

        threading.Thread(target=beat, name="heartbeat", daemon=True).start()
