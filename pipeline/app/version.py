"""The installed version, one place: `--version`, the status file and the `build_info` metric."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("beemon-uploader")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
