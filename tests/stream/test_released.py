"""`Released` against the `Subject` it replaced: the same paths, in the same order, to the same subscribers."""

from __future__ import annotations

import threading

from reactivex.subject import Subject

from operators.dedupe import dedupe_jobs
from pipeline.stream.released import Released
from tests.helpers import job


def _told(channel) -> list[list[str]]:
    """Two subscribers, the first disposed halfway; what each was told."""
    seen: list[list[str]] = [[], []]
    first = channel.subscribe(seen[0].append)
    channel.subscribe(seen[1].append)
    channel.on_next("/o/a.wav")
    channel.on_next("/o/b.wav")
    first.dispose()
    channel.on_next("/o/c.wav")
    return seen


def test_released_tells_what_a_subject_tells():
    assert _told(Released()) == _told(Subject()) == [["/o/a.wav", "/o/b.wav"], ["/o/a.wav", "/o/b.wav", "/o/c.wav"]]


def test_a_released_path_makes_dedupe_forget_it_from_another_thread():
    """As with the subject: a path released from the reports' thread lets the same version through again."""
    for channel in (Released(), Subject()):
        jobs = Subject()
        passed: list[str] = []
        jobs.pipe(dedupe_jobs(channel)).subscribe(lambda j, into=passed: into.append(j.local_path))
        a = job("/o/a.wav")
        jobs.on_next(a)
        jobs.on_next(a)  # the same version again: suppressed
        reporter = threading.Thread(target=channel.on_next, args=("/o/a.wav",))
        reporter.start()
        reporter.join()
        jobs.on_next(a)  # released: a job again
        assert passed == ["/o/a.wav", "/o/a.wav"], type(channel).__name__
