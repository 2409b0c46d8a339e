"""The edges of the pipeline: sources, the FTP sink, the composition root and the command line.

The original uploader's names are importable from here (``from pipeline import Uploader``). They
are loaded on first use, so a sink process that imports ``pipeline.sink.process`` does not pull
in watchdog and the stream.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_ORIGINAL_NAMES = {
    "Uploader": "pipeline.app.uploader",
    "UploadHelper": "pipeline.sink.process",
    "UploadSession": "pipeline.ftp.session",
    "UploadHandler": "pipeline.stream.handler",
}

__all__ = sorted(_ORIGINAL_NAMES)


def __getattr__(name: str) -> Any:
    if name in _ORIGINAL_NAMES:
        return getattr(import_module(_ORIGINAL_NAMES[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
