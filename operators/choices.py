"""The enumerations the settings choose from, and the defaults several layers share: one home each.

Pure constants at the bottom layer, so that the settings' validators, the docs' check of the
settings table, and the code that acts on a value (the FTP parameters, the watch, the backfill,
the options) all import the same tuple rather than spell it again.
"""

from __future__ import annotations

#: `sink.kind`: the protocol files go over (each has its own settings table of that name).
SINK_KINDS: tuple[str, ...] = ("ftp", "sftp", "s3")
#: `ftp.tls`: plain FTP, AUTH TLS on the control port (then PROT P), or TLS from the first byte.
TLS_MODES: tuple[str, ...] = ("none", "explicit", "implicit")
#: `upload.checksum`: hash each file while it is sent (and keep per-day SHA256SUMS), or sizes only.
CHECKSUMS: tuple[str, ...] = ("sha256", "none")
#: `watch.observer`: the kernel's events (Linux), or a poll of the tree (network mounts).
OBSERVER_KINDS: tuple[str, ...] = ("inotify", "polling")
#: `upload.backfill_order`: which end of the backlog goes first.
BACKFILL_ORDERS: tuple[str, ...] = ("newest", "oldest")
#: `upload.ignore_patterns`' default: hidden files and folders, temporary and editor files.
DEFAULT_IGNORE_PATTERNS: tuple[str, ...] = (".*", "*.part", "*.tmp", "*~", "*.swp")
