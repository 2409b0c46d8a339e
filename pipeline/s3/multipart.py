"""Multipart uploads: the parts of a large file, their resume, and the incomplete uploads a crash leaves.

- Each part carries its `ChecksumSHA256`. A resume (the sink says the last attempt's upload is this
  version's) finds the newest incomplete upload of the key and keeps the parts whose checksums
  match the local bytes (`same_part`); the others are sent again.
- The caller completes the upload (`complete`) only if the local file kept its size, with the
  overwrite condition it chose; `Sent.expected` is the composite checksum the server reports.
- `uploads` lists the incomplete uploads under a prefix: the start's clean-up aborts this
  station's own, `remove_stale_temp` those of one key.

Every call goes through the transport's `call` (one S3 operation, errors mapped to failure kinds).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pipeline.s3.body import Window
from pipeline.s3.checksums import b64, md5_matches, sha256_of
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import DeliveryProgress

#: one S3 operation by name with its arguments (the bucket is the caller's), as `S3Transport._call`
Call = Callable[..., Any]


@dataclass(slots=True)
class Sent:
    """What `Multipart.send` did: the upload, its parts for the completion, the bytes sent and kept."""

    upload_id: str
    parts: list[dict[str, Any]] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    sent: int = 0
    resumed: int = 0
    #: the SHA-256 of the whole file, fed part by part (for the day's manifest)
    whole: Any = field(default_factory=hashlib.sha256)

    @property
    def expected(self) -> str:
        """The composite checksum of the completed upload: SHA-256 of the parts' digests, dash, their count."""
        return f"{b64(hashlib.sha256(b''.join(self.digests)).digest())}-{len(self.digests)}"


def same_part(kept: dict[str, Any], local: BinaryIO, start: int, length: int, checksum: str) -> bool:
    """Whether an uploaded part holds `local[start:start + length]`: by its SHA-256 where the server lists
    it, else by its ETag, which is the part's MD5 (AWS without KMS, Ceph, MinIO and SeaweedFS alike)."""
    if kept.get("Size") != length:
        return False
    if kept.get("ChecksumSHA256"):
        return bool(kept["ChecksumSHA256"] == checksum)
    return md5_matches(local, start, length, str(kept.get("ETag", "")))


class Multipart:
    """The multipart side of one transport."""

    def __init__(self, call: Call, throttle: TokenBucket | None, aborted: threading.Event) -> None:
        self._call = call
        self._throttle = throttle
        self._aborted = aborted

    def uploads(self, prefix: str) -> list[dict[str, Any]]:
        """The incomplete multipart uploads whose keys start with `prefix`, all pages."""
        found: list[dict[str, Any]] = []
        arguments: dict[str, Any] = {"Prefix": prefix}
        while True:
            page = self._call("list_multipart_uploads", **arguments)
            found.extend(page.get("Uploads", []))
            if not page.get("IsTruncated"):
                return found
            arguments = {"Prefix": prefix, "KeyMarker": page["NextKeyMarker"]}
            if page.get("NextUploadIdMarker"):
                arguments["UploadIdMarker"] = page["NextUploadIdMarker"]

    def abort(self, key: str, upload_id: str) -> None:
        self._call("abort_multipart_upload", Key=key, UploadId=upload_id)

    def resumable(self, key: str) -> tuple[str | None, dict[int, dict[str, Any]]]:
        """The newest incomplete upload of `key` and its parts by number, or (None, {})."""
        uploads = sorted((u for u in self.uploads(key) if u["Key"] == key), key=lambda u: u["Initiated"])
        if not uploads:
            return None, {}
        upload_id = uploads[-1]["UploadId"]
        parts: dict[int, dict[str, Any]] = {}
        arguments: dict[str, Any] = {"Key": key, "UploadId": upload_id}
        while True:
            page = self._call("list_parts", **arguments)
            parts.update({p["PartNumber"]: p for p in page.get("Parts", [])})
            if not page.get("IsTruncated"):
                return upload_id, parts
            arguments["PartNumberMarker"] = page["NextPartNumberMarker"]

    def send(
        self, local: BinaryIO, key: str, size: int, part_size: int, resume: bool, progress: DeliveryProgress
    ) -> Sent:
        """Upload `local[:size]` in parts of `part_size` (keeping matching parts when resuming); not completed."""
        upload_id, done = self.resumable(key) if resume else (None, {})
        if upload_id is None:
            upload_id = self._call("create_multipart_upload", Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
        progress.stored = True  # this upload's parts are this version's bytes: a next attempt may keep them
        result = Sent(upload_id)
        for number in range(1, -(-size // part_size) + 1):
            start = (number - 1) * part_size
            self._part(result, local, key, number, start, min(part_size, size - start), done.get(number))
        progress.complete = True
        return result

    def _part(
        self, result: Sent, local: BinaryIO, key: str, number: int, start: int, length: int, kept: dict[str, Any] | None
    ) -> None:
        """One part: kept when the earlier attempt's matches the local bytes, else uploaded."""
        digest = sha256_of(local, start, length, result.whole)
        checksum = b64(digest)
        result.digests.append(digest)
        if kept is not None and same_part(kept, local, start, length, checksum):
            etag = kept["ETag"]
            result.resumed += length
        else:
            body = Window(local, start, length, throttle=self._throttle, aborted=self._aborted)
            etag = self._call(
                "upload_part",
                Key=key,
                UploadId=result.upload_id,
                PartNumber=number,
                Body=body,
                ContentLength=length,
                ChecksumSHA256=checksum,
            )["ETag"]
            result.sent += length
        result.parts.append({"PartNumber": number, "ETag": etag, "ChecksumSHA256": checksum})

    def complete(self, key: str, result: Sent, condition: dict[str, Any]) -> Any:
        return self._call(
            "complete_multipart_upload",
            Key=key,
            UploadId=result.upload_id,
            MultipartUpload={"Parts": result.parts},
            **condition,
        )
