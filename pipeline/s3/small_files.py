"""Small objects on S3: a manifest put, read back, a prefix listed, and the server's SHA-256 of an object.

An object appears whole or not at all, so a manifest is one PUT with its `ChecksumSHA256` (the
server refuses a body that does not match), then a HEAD for its size. A listing is the keys under
`<folder>/`, relative to it, with their sizes. The server's SHA-256 is the object's stored
full-object checksum (HEAD with checksum mode); a file above the multipart threshold has only a
composite checksum (a hash of its parts' hashes), which says nothing comparable to `sha256sum`,
so there is none for it. Hence the check `verify` can make in general is the size (`CHECK`).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from pipeline.s3.checksums import b64
from pipeline.transport.errors import TransientFailure

#: one S3 operation by name with its arguments (the bucket is the caller's), as `S3Transport._call`
Call = Any

#: not every object has a full-object SHA-256 (multipart uploads do not): the size is the general check
CHECK = "size"

_ABSENT = ("404", "NoSuchKey", "NotFound")


def put_small(call: Call, key: str, data: bytes) -> None:
    """One PUT of `data` with its SHA-256, then a HEAD: the object must hold `len(data)` bytes."""
    call("put_object", Key=key, Body=data, ContentLength=len(data), ChecksumSHA256=b64(hashlib.sha256(data).digest()))
    size = int(call("head_object", Key=key)["ContentLength"])
    if size != len(data):
        raise TransientFailure(f"size mismatch: the server has {size} bytes of {key}, sent {len(data)}", command="HEAD")


def get_small(call: Call, key: str) -> bytes | None:
    """The content of the object `key`, None when there is none."""
    try:
        return bytes(call("get_object", Key=key)["Body"].read())
    except Exception as failure:
        if getattr(failure, "code", "") in _ABSENT:
            return None
        raise


def list_files(call: Call, folder: str) -> dict[str, int]:
    """Every object under `folder/` by key relative to it, with its size (all pages); {} when none."""
    prefix = folder.rstrip("/") + "/" if folder else ""
    found: dict[str, int] = {}
    arguments: dict[str, Any] = {"Prefix": prefix}
    while True:
        page = call("list_objects_v2", **arguments)
        for entry in page.get("Contents", []):
            found[entry["Key"][len(prefix) :]] = int(entry["Size"])
        if not page.get("IsTruncated"):
            return found
        arguments = {"Prefix": prefix, "ContinuationToken": page["NextContinuationToken"]}


def remote_sha256(call: Call, key: str) -> str | None:
    """The object's full-object SHA-256 (hex) as the server stored it; None when absent or only composite."""
    try:
        head = call("head_object", Key=key, ChecksumMode="ENABLED")
    except Exception as failure:
        if getattr(failure, "code", "") in _ABSENT:
            return None
        raise
    checksum = str(head.get("ChecksumSHA256") or "")
    if not checksum or "-" in checksum or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
        return None
    return base64.b64decode(checksum).hex()
