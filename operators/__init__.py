"""Pure stream operators and the values they carry; no I/O, no settings, no clock of their own.

Names are loaded on first use: the sink process imports `operators.model` and `operators.remote_path`
(plain values and path rules) and must not pull in reactivex through the operators beside them.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_HOMES = {
    "EventKind": "operators.model",
    "FileEvent": "operators.model",
    "Priority": "operators.model",
    "UploadJob": "operators.model",
    "remote_name": "operators.remote_path",
    "remote_path_for": "operators.remote_path",
    "safe_segment": "operators.remote_path",
    "debounce_per_path": "operators.debounce",
    "dedupe_jobs": "operators.dedupe",
    "is_ready": "operators.readiness",
    "is_wanted": "operators.readiness",
    "ready_files": "operators.ready_files",
    "watched_files": "operators.ready_files",
    "job_for": "operators.job_mapping",
    "to_upload_jobs": "operators.upload_jobs",
    "ready_upload_jobs": "operators.upload_jobs",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'operators' has no attribute {name!r}")
