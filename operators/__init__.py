"""Pure stream operators and the values they carry; no I/O, no settings, no clock of their own."""

from operators.model import EventKind, FileEvent, Priority, UploadJob
from operators.remote_path import remote_name, remote_path_for, safe_segment

__all__ = ["EventKind", "FileEvent", "Priority", "UploadJob", "remote_name", "remote_path_for", "safe_segment"]
from operators.debounce import debounce_per_path
from operators.dedupe import dedupe_jobs
from operators.ready_files import is_ready, is_wanted, ready_files, watched_files
from operators.upload_jobs import job_for, to_upload_jobs

__all__ += [
    "debounce_per_path",
    "dedupe_jobs",
    "is_ready",
    "is_wanted",
    "job_for",
    "ready_files",
    "to_upload_jobs",
    "watched_files",
]
