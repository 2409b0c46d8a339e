"""Pure stream operators and the values they carry; no I/O, no settings, no clock of their own."""

from operators.model import EventKind, FileEvent, Priority, UploadJob
from operators.remote_path import remote_name, remote_path_for, safe_segment

__all__ = ["EventKind", "FileEvent", "Priority", "UploadJob", "remote_name", "remote_path_for", "safe_segment"]
