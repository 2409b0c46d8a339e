"""The checksums S3 checks a body against: SHA-256 of a range of a local file, base64 as the headers carry it.

A PUT or an uploaded part carries `ChecksumSHA256` of the bytes read here, so the server refuses a
body that does not match (`BadDigest`); a part kept from an earlier attempt is matched by the same
SHA-256 where the server lists it, else by its ETag, the part's MD5 (`md5_matches`).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, BinaryIO

from pipeline.transport.errors import LocalFileChanged

READ_BLOCK = 1 << 20


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def sha256_of(file: BinaryIO, start: int, length: int, whole: Any = None) -> bytes:
    """The SHA-256 of `file[start:start + length]`; `LocalFileChanged` when the file is shorter now.
    `whole` (a running hashlib SHA-256 of the file, parts read in order) is fed the same bytes."""
    digest = hashlib.sha256()
    file.seek(start)
    left = length
    while left:
        block = file.read(min(READ_BLOCK, left))
        if not block:
            raise LocalFileChanged(f"{file.name} shrank below {start + length - left} bytes while it was read")
        digest.update(block)
        if whole is not None:
            whole.update(block)
        left -= len(block)
    return digest.digest()


def md5_matches(file: BinaryIO, start: int, length: int, etag: str) -> bool:
    """Whether `file[start:start + length]` has the MD5 that `etag` (a part's ETag, quoted or not) names."""
    file.seek(start)
    md5 = hashlib.md5(usedforsecurity=False)
    left = length
    while left and (block := file.read(min(READ_BLOCK, left))):
        md5.update(block)
        left -= len(block)
    return not left and etag.strip('"') == md5.hexdigest()
