"""A ready file's upload job: a stat of the file plus the remote-path mapping. Pure.

The stat is the caller's (`stat=`): operators touch no file system themselves, so the stream
passes `pipeline.outbox.file_state.finished_file_stat` and the tests a fake disk. The stream's
operator (`operators.upload_jobs`) maps events with it; `run --once` and the original API's
handler call it directly, without a stream library.

The day's CSV: a `X.csv.final` normally delivers itself as `X.csv`. When the bare `X.csv` beside
it is longer (the station wrote an empty or cut `.final`), the job delivers `X.csv` instead, as
the day's file (`day_file`): the server gets the longer of the two, and the sink removes the
`.final` only if the delivered bytes hold it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from operators.file_rules import bare_csv_of, is_final
from operators.model import EventKind, FileEvent, UploadJob
from operators.readiness import parts_below
from operators.remote_path import remote_path_of_parts

#: A file's stat, or None when it is gone or must not be uploaded (a symlink, a file still being written).
StatFn = Callable[[str], os.stat_result | None]


def job_for(event: FileEvent, *, outbox: str, remote_root: str, station: str, stat: StatFn) -> UploadJob | None:
    """The job for a ready file, or None if it vanished, lies outside the outbox or maps to no remote name.

    A `.final` shorter than its bare `.csv` gives the `.csv`'s job (see the module docstring).
    """
    st = stat(event.path)
    if st is None:
        return None
    parts = parts_below(event.path, outbox)
    if parts is None:
        return None
    day_file = event.kind is EventKind.DAY_FILE
    remote = remote_path_of_parts(parts, remote_root=remote_root, station=station, mtime=st.st_mtime, day_file=day_file)
    if remote is None:
        return None
    if is_final(event.path):
        bare = bare_csv_of(event.path)
        bare_st = stat(bare)
        if bare_st is not None and bare_st.st_size > st.st_size:
            return UploadJob(bare, remote, bare_st.st_size, bare_st.st_mtime_ns, event.priority, day_file=True)
    return UploadJob(event.path, remote, st.st_size, st.st_mtime_ns, event.priority, day_file=day_file)
