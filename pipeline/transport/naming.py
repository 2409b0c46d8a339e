"""The temporary name a file is uploaded under beside its final name, for the transports that rename.

One rule for every transport: the sink's `.part` records, the ignore patterns and an operator
looking at the server all know `.<name>.part`. A name of 250-255 bytes leaves no room for the dot
and `.part` (the server would refuse every store), so there the short name is a digest of the
name, the same at every attempt: resuming this file's own `.part` and overwriting a stale one work
as for any other name.
"""

from __future__ import annotations

import hashlib
import posixpath

#: The longest file name most servers' file systems take, in bytes (ext4, XFS, btrfs, ZFS, NTFS).
NAME_MAX = 255


def temp_name(remote_path: str) -> str:
    """`dir/.name.part`, or `dir/.<hash>.part` where that would be longer than a file system takes."""
    directory, name = posixpath.split(remote_path)
    staging = f".{name}.part"
    if len(staging.encode("utf-8", "surrogateescape")) > NAME_MAX:
        staging = f".{hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:32]}.part"
    return posixpath.join(directory, staging)
