"""Property: random event sequences through watched -> debounce -> ready -> jobs, against a reference model.

A small file system model applies each event (and answers the job stage's stat); the reference
splits each path's events into quiet periods and says which must give a job. Virtual time, so a
few hundred sequences take about a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from operators.debounce import debounce_per_path
from operators.model import EventKind, FileEvent, UploadJob
from operators.ready_files import ready_files, watched_files
from operators.upload_jobs import to_upload_jobs

OUTBOX = "/outbox"
PATTERNS = (".*", "*.part", "*.tmp", "*~", "*.swp")
WANTED = ("a.wav", "b.wav", "e.csv.final")
UNWANTED = (".c.wav", "d.part", "e.csv")  # ignored, ignored, still growing
NAMES = WANTED + UNWANTED
DUETIME = 2.5  # events come at whole seconds: no event ever ties with a timer
KINDS = (EventKind.CREATED, EventKind.MODIFIED, EventKind.CLOSED, EventKind.DELETED, EventKind.MOVED)
READY = {EventKind.CLOSED, EventKind.MOVED, EventKind.CREATED}
NOON_0719 = datetime.fromisoformat("2022-07-19T12:00:00+00:00").timestamp()
REMOTE = {
    f"{OUTBOX}/a.wav": "/r/st/2022-07-19/audio/a.wav",
    f"{OUTBOX}/b.wav": "/r/st/2022-07-19/audio/b.wav",
    f"{OUTBOX}/e.csv.final": "/r/st/2022-07-19/temp/e.csv",
}


def path(name: str) -> str:
    return f"{OUTBOX}/{name}"


@dataclass
class Disk:
    """Which files exist and how big they are; each event is applied as the kernel would have."""

    sizes: dict[str, int] = field(default_factory=dict)

    def apply(self, event: FileEvent) -> None:
        if event.kind is EventKind.CREATED:
            self.sizes[event.path] = 0
        elif event.kind is EventKind.MODIFIED:
            self.sizes[event.path] = self.sizes.get(event.path, 0) + 1
        elif event.kind is EventKind.CLOSED:
            self.sizes.setdefault(event.path, 0)
        elif event.kind is EventKind.DELETED:
            self.sizes.pop(event.path, None)
        elif event.kind is EventKind.MOVED:
            self.sizes[event.path] = self.sizes.pop(event.src_path, 0)

    def stat(self, name: str) -> SimpleNamespace | None:
        if name not in self.sizes:
            return None
        return SimpleNamespace(st_size=self.sizes[name], st_mtime=NOON_0719, st_mtime_ns=self.sizes[name])


@st.composite
def timelines(draw) -> list[tuple[int, FileEvent]]:
    """Up to 30 events on 6 names, with gaps of 0 to 6 s (some shorter than the debounce, some longer)."""
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from((0, 1, 2, 3, 4, 6)),
                st.sampled_from(KINDS),
                st.sampled_from(NAMES),
                st.sampled_from(NAMES),
            ),
            max_size=30,
        )
    )
    timeline, now = [], 1
    for gap, kind, name, other in steps:
        now += gap
        if kind is EventKind.MOVED:
            if name == other:
                continue
            event = FileEvent(kind, path(other), src_path=path(name))
        else:
            event = FileEvent(kind, path(name))
        timeline.append((now, event))
    return timeline


def touches(event: FileEvent) -> list[tuple[str, EventKind]]:
    """(path, kind) per path an event concerns: a move is a deletion of its source too."""
    if event.kind is EventKind.MOVED:
        return [(event.src_path, EventKind.DELETED), (event.path, EventKind.MOVED)]
    return [(event.path, event.kind)]


def quiet_periods(timeline: list[tuple[int, FileEvent]]) -> dict[str, list[list[tuple[int, EventKind]]]]:
    """Per path, its events split where the path was quiet for the debounce."""
    periods: dict[str, list[list[tuple[int, EventKind]]]] = {}
    for time, event in timeline:
        for name, kind in touches(event):
            bursts = periods.setdefault(name, [])
            if bursts and time - bursts[-1][-1][0] < DUETIME:
                bursts[-1].append((time, kind))
            else:
                bursts.append([(time, kind)])
    return periods


@dataclass
class Outcome:
    ready: list[tuple[float, str]]  # what the debounce and readiness let through, before the stat
    jobs: list[tuple[float, UploadJob]]


def run(timeline: list[tuple[int, FileEvent]], polling: bool) -> Outcome:
    scheduler = TestScheduler()
    disk = Disk()
    events: Subject[FileEvent] = Subject()
    outcome = Outcome([], [])
    jobs = events.pipe(
        watched_files(PATTERNS, root=OUTBOX),
        debounce_per_path(DUETIME, scheduler),
        ready_files(PATTERNS, root=OUTBOX, polling=polling),
        ops.do_action(lambda event: outcome.ready.append((scheduler.clock, event.path))),
        to_upload_jobs(OUTBOX, remote_root="/r", station="st", stat=disk.stat),
    )
    jobs.subscribe(lambda job: outcome.jobs.append((scheduler.clock, job)), scheduler=scheduler)
    for time, event in timeline:

        def happen(_scheduler, _state, event=event):
            disk.apply(event)
            events.on_next(event)

        scheduler.schedule_absolute(float(time), happen)
    scheduler.advance_to(float(timeline[-1][0] + 10 if timeline else 10))
    return outcome


@settings(max_examples=300, deadline=None)
@given(timelines(), st.booleans())
def test_jobs_match_the_quiet_periods(timeline, polling):
    outcome = run(timeline, polling)
    ready = outcome.ready
    # A `.final` shorter than its bare `.csv` delivers the `.csv` as the day's file: the same ready event.
    jobs = [(time, job.local_path + ".final" if job.day_file else job.local_path) for time, job in outcome.jobs]
    periods = quiet_periods(timeline)
    ready_kinds = READY | ({EventKind.MODIFIED} if polling else set())

    # At most one per quiet period per path, at its end plus the debounce.
    for time, name in ready:
        assert time in [burst[-1][0] + DUETIME for burst in periods.get(name, [])]
    assert len(ready) == len(set(ready))

    # Never for an ignored or still-growing name, nor for one deleted (or moved away) and gone:
    # the deletion cancels the pending upload before any stat is taken.
    for time, name in ready:
        assert name.rsplit("/", 1)[1] in WANTED
        (burst,) = [b for b in periods[name] if b[-1][0] + DUETIME == time]
        assert burst[-1][1] is not EventKind.DELETED

    # Every file whose quiet period ended with it finished (closed, moved in; created: moved in from
    # outside; with polling also modified) is ready then, and a job: it exists, the model says so.
    expected = sorted(
        (burst[-1][0] + DUETIME, path(name))
        for name in WANTED
        for burst in periods.get(path(name), [])
        if burst[-1][1] in ready_kinds
    )
    assert sorted(ready) == expected
    assert sorted(jobs) == expected


@settings(max_examples=100, deadline=None)
@given(timelines())
def test_every_job_has_the_size_the_file_had_and_its_remote_path(timeline):
    disk = Disk()
    pending = iter(timeline)
    upcoming = next(pending, None)
    for time, job in run(timeline, polling=False).jobs:
        while upcoming is not None and upcoming[0] < time:
            disk.apply(upcoming[1])
            upcoming = next(pending, None)
        assert job.size == disk.sizes[job.local_path]
        if job.day_file:  # the longer of the two went: the bare `.csv` over its `.final`
            assert job.local_path == path("e.csv") and disk.sizes[job.local_path] > disk.sizes[path("e.csv.final")]
            assert job.remote_path == REMOTE[path("e.csv.final")]
        else:
            assert job.remote_path == REMOTE[job.local_path]
            if job.local_path == path("e.csv.final"):
                assert disk.sizes.get(path("e.csv"), 0) <= job.size
