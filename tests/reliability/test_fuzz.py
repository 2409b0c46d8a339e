"""Arbitrary input against the name mapping, the job path on a real disk, and the event stream.

Whatever the station names its files, and whatever events the kernel reports (in whatever order,
for whatever paths), nothing raises, nothing errors the stream, and no remote path leaves
`ftp.remote_root`, not even as the server will read it.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import operators as ops
from reactivex.subject import Subject
from reactivex.testing import TestScheduler

from operators.choices import DEFAULT_IGNORE_PATTERNS
from operators.debounce import debounce_per_path
from operators.dedupe import dedupe_jobs
from operators.job_mapping import job_for
from operators.model import EventKind, FileEvent, UploadJob
from operators.readiness import parts_below
from operators.ready_files import ready_files, watched_files
from operators.remote_path import remote_path_for, safe_segment
from operators.upload_jobs import to_upload_jobs
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadSession, temp_name
from pipeline.outbox.file_state import regular_file_stat
from pipeline.stream.scan_jobs import scan_jobs

ROOT = "/srv/bee data"
OUTBOX = "/outbox"
#: Anything a name can hold: any character, undecodable bytes (lone surrogates), separators, dots.
CHARACTERS = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
    st.sampled_from("/\\.\n\r\t\x00\x7f@ -"),
)
TEXT = st.text(CHARACTERS, max_size=24)
MTIMES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**63), 2**63).map(float))


def assert_safe(remote: str, root: str = ROOT) -> None:
    """Under `root`, as the mapping's string, as the session makes it absolute, and as its temp name."""
    normalized_root = posixpath.normpath("/" + root.strip("/")) if root.strip("/") else "/"
    prefix = normalized_root.rstrip("/") + "/"
    assert posixpath.normpath(remote) == remote
    assert remote.startswith(prefix)
    segments = remote[len(prefix) :].split("/")
    assert len(segments) == 4
    for segment in segments:
        assert segment not in ("", ".", "..")
        assert not any(ord(c) < 0x20 or c in "\x7f\\" or 0xD800 <= ord(c) <= 0xDFFF for c in segment)
    line = f"STOR {remote}".encode()  # what ftplib will send: encodable, one line
    assert b"\r" not in line and b"\n" not in line
    session = UploadSession(FtpParams("127.0.0.1", remote_root=root))
    for path in (session.absolute(remote), temp_name(session.absolute(remote))):
        assert path.startswith(prefix)


def test_the_name_mapping_takes_any_name_and_stays_under_the_root(scale):
    @settings(max_examples=scale.examples * 10, deadline=None)
    @given(st.lists(TEXT, min_size=0, max_size=4), TEXT, MTIMES, st.sampled_from([ROOT, "/", "/a/../b", "//x//"]))
    def check(parts: list[str], station: str, mtime: float, root: str) -> None:
        relative = "/".join(parts)
        remote = remote_path_for(relative, remote_root=root, station=station, mtime=mtime)
        if remote is not None:
            assert_safe(remote, root)

    check()


def test_safe_segment_is_idempotent_and_leaves_safe_names_alone(scale):
    @settings(max_examples=scale.examples * 10, deadline=None)
    @given(TEXT)
    def check(segment: str) -> None:
        once = safe_segment(segment)
        assert safe_segment(once) == once
        if segment not in ("", ".", "..") and all(c.isprintable() and c not in "/\\" for c in segment):
            assert once == segment

    check()


# --- the job path, on a real disk

SEGMENT = st.binary(min_size=1, max_size=40).filter(
    lambda b: b"/" not in b and b"\0" not in b and b not in (b".", b"..")
)


def test_no_job_made_from_real_files_escapes_the_root_whatever_their_names(scale):
    @settings(
        max_examples=scale.examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(st.lists(st.lists(SEGMENT, min_size=1, max_size=3), min_size=1, max_size=8), TEXT.filter(bool))
    def check(paths: list[list[bytes]], station: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            outbox = os.path.join(folder, "outbox")
            os.mkdir(outbox)
            made = set()
            for segments in paths:
                path = os.path.join(os.fsencode(outbox), *segments)
                try:
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    Path(os.fsdecode(path)).write_bytes(b"x")
                except OSError:  # a folder where a file was, a name too long: not this test's subject
                    continue
                made.add(os.fsdecode(path))
            jobs = list(scan_jobs(outbox, remote_root=ROOT, station=station, ignore_patterns=DEFAULT_IGNORE_PATTERNS))
            for path in made:  # and each as a live event would make it
                event = FileEvent(EventKind.CLOSED, path)
                job = job_for(event, outbox=outbox, remote_root=ROOT, station=station, stat=regular_file_stat)
                if job is not None:
                    jobs.append(job)
            for job in jobs:
                assert job.local_path in made
                assert_safe(job.remote_path)

    check()


# --- the event stream


@st.composite
def event_paths(draw) -> str:
    """Paths in, at and around the outbox: nested, dotted, escaping, look-alike, relative, empty."""
    kind = draw(st.sampled_from(["inside", "inside", "inside", "escape", "lookalike", "outside", "root", "odd"]))
    if kind == "inside":
        return OUTBOX + "/" + "/".join(draw(st.lists(TEXT.filter(bool), min_size=1, max_size=3)))
    if kind == "escape":
        return OUTBOX + "/../" + draw(TEXT)
    if kind == "lookalike":
        return OUTBOX + "ed/" + draw(TEXT)
    if kind == "outside":
        return "/elsewhere/" + draw(TEXT)
    if kind == "root":
        return OUTBOX
    return draw(TEXT)


EVENTS = st.lists(
    st.tuples(
        st.floats(0, 5, allow_nan=False),
        st.sampled_from(list(EventKind)),
        event_paths(),
        st.booleans(),
        st.one_of(st.just(""), event_paths()),
    ),
    max_size=40,
)


class FuzzDisk:
    """A stat that says an arbitrary, fixed subset of paths exists, with arbitrary sizes and times."""

    def __init__(self, present: set[str], mtime: float) -> None:
        self.present = present
        self.mtime = mtime

    def __call__(self, path: str) -> os.stat_result | None:
        if path not in self.present:
            return None
        return os.stat_result((0o100644, 1, 1, 1, 0, 0, len(path), 0, self.mtime, 0))


def test_the_event_stream_takes_any_events_without_error_or_escape(scale):
    @settings(max_examples=scale.examples * 5, deadline=None)
    @given(EVENTS, st.sets(event_paths(), max_size=10), MTIMES, st.booleans())
    def check(steps, present, mtime, polling) -> None:
        scheduler = TestScheduler()
        events: Subject[FileEvent] = Subject()
        released: Subject[str] = Subject()
        disk = FuzzDisk(present | {path for _, _, path, _, _ in steps[::2]}, mtime)
        jobs: list[UploadJob] = []
        errors: list[Exception] = []
        events.pipe(
            watched_files(DEFAULT_IGNORE_PATTERNS, root=OUTBOX),
            debounce_per_path(2.5, scheduler),
            ready_files(DEFAULT_IGNORE_PATTERNS, root=OUTBOX, polling=polling),
            to_upload_jobs(OUTBOX, remote_root=ROOT, station="st", stat=disk),
            dedupe_jobs(released),
            ops.do_action(lambda job: released.on_next(job.local_path) if len(jobs) % 2 else None),
        ).subscribe(jobs.append, errors.append, scheduler=scheduler)
        now = 1.0
        for gap, kind, path, is_directory, source in steps:
            now += gap
            event = FileEvent(kind, path, is_directory, src_path=source)
            scheduler.schedule_absolute(now, lambda *_, event=event: events.on_next(event))
        scheduler.advance_to(now + 10)
        assert errors == []
        mentioned = {path for _, _, path, _, _ in steps}
        for job in jobs:
            assert job.local_path in mentioned
            parts = parts_below(job.local_path, OUTBOX)
            assert parts is not None and ".." not in parts
            assert_safe(job.remote_path)

    check()
