"""Debounce per path: a burst of events for one file becomes its last event, once the file is quiet."""

from __future__ import annotations

from collections.abc import Callable

import reactivex
from reactivex import GroupedObservable, Observable, abc
from reactivex import operators as ops

from operators.model import FileEvent


def debounce_per_path(
    duetime: float, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[FileEvent]], Observable[FileEvent]]:
    """Emit a path's last event once that path has been quiet for `duetime` seconds.

    Each path has its own group, so different paths never delay each other; a group ends when its
    path goes quiet, which releases its state (memory follows the paths active right now, not the
    paths ever seen). On completion every pending path is emitted at once; an error drops them.

    ::

        -a-a-b-a-----|      duetime 3
        -------b-a---|
    """

    def last_of_quiet_period(group: GroupedObservable[str, FileEvent]) -> Observable[FileEvent]:
        return group.pipe(ops.last())

    return reactivex.compose(
        ops.group_by_until(
            lambda event: event.path,
            None,
            lambda group: group.pipe(ops.debounce(duetime, scheduler=scheduler)),
        ),
        ops.flat_map(last_of_quiet_period),
    )
