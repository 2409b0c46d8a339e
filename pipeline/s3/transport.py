"""S3 behind the transport seam: `S3Transport`, one boto3 client delivering files as objects.

An object appears whole or not at all, so there is no temporary name: a PUT (or a multipart
upload's completion) is the rename. One delivery, under section comments below (the multipart
side is `pipeline.s3.multipart`, the checksums `pipeline.s3.checksums`):

- guard: HEAD the key first; an object there that the overwrite guard may not replace ends the
  delivery with `TargetExists`. When there was none, the write says `If-None-Match: *`, so an
  object that appeared meanwhile is not overwritten either (412: the guard is asked again).
- small files (below `multipart_threshold_mb`): one PUT with `ChecksumSHA256` of the bytes read,
  so the server refuses a body that does not match (`BadDigest`): the check is end to end.
- large files: a multipart upload, each part with its `ChecksumSHA256`; a resume (the sink says
  the last attempt's upload is this version's) finds that upload and keeps the parts whose
  checksums match the local bytes. The upload is completed only if the local file kept its size.
- verify: `head_object` with checksum mode: the size, and the SHA-256 (or the multipart upload's
  composite checksum) where the server returns it, before the sink deletes the local file.
- clean-up: at the first connect of a process, incomplete multipart uploads under
  `<prefix>/<station>/` (this station's own) are aborted; nothing else is touched
  (`pipeline.s3.cleanup`; the client's configuration is `pipeline.s3.client`).
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

from pipeline.s3 import small_files
from pipeline.s3.body import Window
from pipeline.s3.checksums import b64, sha256_of
from pipeline.s3.cleanup import abort_own_uploads
from pipeline.s3.client import new_client
from pipeline.s3.errors import classify, error_code
from pipeline.s3.multipart import Multipart
from pipeline.s3.params import S3Params
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress
from pipeline.transport.errors import (
    ConnectionLost,
    LocalFileChanged,
    LocalFileGone,
    TargetExists,
    TransientFailure,
)

__all__ = ["S3Transport", "b64"]

log = logging.getLogger("beemon.sink.s3")
T = TypeVar("T")


class S3Transport:
    """One S3 client as a sink worker uses it (see the module docstring for the steps)."""

    def __init__(
        self, params: S3Params, *, throttle: TokenBucket | None = None, aborted: threading.Event | None = None
    ) -> None:
        self.params = params
        self._throttle = throttle
        self._aborted = aborted or threading.Event()
        self._client: Any = None
        self.multipart = Multipart(self._call, throttle, self._aborted)
        #: the server honours If-None-Match on writes (learned: one that answers NotImplemented is not asked again)
        self.conditional = True

    def __repr__(self) -> str:
        p = self.params
        state = "connected" if self.connected else "closed"
        return f"S3Transport({p.endpoint_url or 'AWS'}/{p.bucket}/{p.prefix}, {state})"

    # --- calls

    def _call(self, operation: str, **arguments: Any) -> Any:
        """One S3 operation; botocore's errors become the transports' failure kinds."""
        client = self._require()
        try:
            return getattr(client, operation)(Bucket=self.params.bucket, **arguments)
        except (LocalFileChanged, LocalFileGone):
            raise
        except Exception as error:
            failure = classify(error, self.params, command=operation)
            failure.code = error_code(error)  # type: ignore[attr-defined]
            if not failure.session_usable:
                self._client = None
            raise failure from None

    def _require(self) -> Any:
        if self._client is None:
            raise ConnectionLost("not connected", command="S3")
        return self._client

    # --- connection

    @property
    def connected(self) -> bool:
        return self._client is not None

    def connect(self) -> str:
        """Make the client, check the credentials and the bucket (HEAD), clean up once; returns a greeting."""
        p = self.params
        self._client = new_client(p)
        try:
            self._client.head_bucket(Bucket=p.bucket)
        except Exception as error:
            self._client = None
            raise classify(error, p, command="CONNECT") from None
        abort_own_uploads(p, self.multipart)
        return f"S3 {p.endpoint_url or 'AWS'} bucket {p.bucket}"

    def close(self, *, wait_reply: bool = True) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception as error:  # closing a pool never matters enough to raise
                log.debug("closing the S3 client: %s", error)

    def abort(self) -> None:
        """Make the body being sent fail at its next read (the owner's call then ends)."""
        self._aborted.set()

    def keep_alive(self) -> None:
        self._call("head_bucket")

    def idle(self) -> None:
        """Nothing is prepared ahead on S3."""

    # --- keys

    @staticmethod
    def key(remote_path: str) -> str:
        return posixpath.normpath("/" + remote_path).lstrip("/")

    def target_in_folder(self, remote_path: str, name: str) -> str:
        folder = self.key(remote_path) + "/"
        page = self._call("list_objects_v2", Prefix=folder, MaxKeys=1)
        return posixpath.join(remote_path, name) if page.get("KeyCount") else remote_path

    def read(self, remote_path: str) -> bytes:
        """The whole content of one object (`demo` compares what arrived with what was written)."""
        return bytes(self._call("get_object", Key=self.key(remote_path))["Body"].read())

    def remove(self, remote_path: str) -> None:
        """Delete one object (`check` cleans up its probe with it)."""
        self._call("delete_object", Key=self.key(remote_path))

    def remove_stale_temp(self, remote_path: str) -> None:
        key = self.key(remote_path)
        for upload in self.multipart.uploads(key):
            if upload["Key"] == key:
                self.multipart.abort(key, upload["UploadId"])

    def _size(self, key: str) -> int | None:
        try:
            return int(self._call("head_object", Key=key)["ContentLength"])
        except Exception as failure:
            if getattr(failure, "code", "") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # --- one delivery

    def deliver(self, delivery: Delivery, progress: DeliveryProgress) -> Delivered:
        started = time.monotonic()
        key = self.key(delivery.remote_path)
        try:
            local = open(delivery.local_path, "rb")  # noqa: SIM115 - closed below, after the transfer
        except FileNotFoundError:
            raise LocalFileGone(delivery.local_path) from None
        with local:
            opened = os.fstat(local.fileno()).st_size
            existing = self._size(key)
            self._guard(delivery, key, existing)
            if delivery.size < self.params.threshold_bytes:
                sent, resumed, expected, sha256 = self._put(local, key, delivery, existing is None, opened)
            else:
                sent, resumed, expected, sha256 = self._multipart(
                    local, key, delivery, progress, existing is None, opened
                )
        progress.stored = progress.complete = progress.renamed = True
        verified = self._verify(key, delivery.size, expected) if delivery.verify_size else None
        reply = f"stored as s3://{self.params.bucket}/{key}"
        # the server refused any body whose SHA-256 (of the object or of each part) did not match
        by = "hash" if verified else None
        return Delivered(sent, resumed, reply, verified, time.monotonic() - started, sha256, by)

    def _guard(self, delivery: Delivery, key: str, existing: int | None) -> None:
        if existing is not None and delivery.may_replace is not None and not delivery.may_replace(existing):
            raise TargetExists(
                f"refusing to overwrite s3://{self.params.bucket}/{key} ({existing} B)"
                f" with a different file {delivery.local_path} ({delivery.size} B)"
            )

    def _conditional(self, write: Callable[[dict[str, Any]], T], delivery: Delivery, key: str, absent: bool) -> T:
        """Run `write` with If-None-Match: * when the key was absent; on 412, ask the guard, then write if it allows."""
        if absent and self.conditional:
            try:
                return write({"IfNoneMatch": "*"})
            except Exception as failure:
                code = getattr(failure, "code", "")
                if code == "NotImplemented":
                    self.conditional = False
                    log.info("%s ignores If-None-Match: the HEAD before each write is the overwrite guard", self)
                elif code in ("PreconditionFailed", "412"):
                    self._guard(delivery, key, self._size(key))
                else:
                    raise
        return write({})

    def _changed(self, local: BinaryIO, delivery: Delivery, opened: int) -> None:
        if (now := os.fstat(local.fileno()).st_size) != opened:
            raise LocalFileChanged(f"{delivery.local_path} is {now} bytes now, {opened} when its upload began")

    # --- one PUT

    def _put(
        self, local: BinaryIO, key: str, delivery: Delivery, absent: bool, opened: int
    ) -> tuple[int, int, str, str]:
        digest = sha256_of(local, 0, delivery.size)
        checksum = b64(digest)
        self._changed(local, delivery, opened)

        def write(condition: dict[str, Any]) -> Any:
            body = Window(local, 0, delivery.size, throttle=self._throttle, aborted=self._aborted)
            return self._call(
                "put_object", Key=key, Body=body, ContentLength=delivery.size, ChecksumSHA256=checksum, **condition
            )

        self._conditional(write, delivery, key, absent)
        return delivery.size, 0, checksum, digest.hex()

    # --- multipart

    def _multipart(
        self, local: BinaryIO, key: str, delivery: Delivery, progress: DeliveryProgress, absent: bool, opened: int
    ) -> tuple[int, int, str, str]:
        part_size = self.params.part_size(delivery.size)
        result = self.multipart.send(local, key, delivery.size, part_size, delivery.resume, progress)
        self._changed(local, delivery, opened)
        self._conditional(lambda condition: self.multipart.complete(key, result, condition), delivery, key, absent)
        return result.sent, result.resumed, result.expected, result.whole.hexdigest()

    # --- small files (the manifests) and what `verify` asks (`pipeline.s3.small_files`)

    def put_small(self, remote_path: str, data: bytes, *, new: bool = False, then_read: bool = False) -> None:
        """`new` is not checked here: this transport answers no `Delivery.probe`, so it is never told so;
        `then_read` changes nothing (the read-back costs its own request)."""
        small_files.put_small(self._call, self.key(remote_path), data)

    def get_small(self, remote_path: str) -> bytes | None:
        return small_files.get_small(self._call, self.key(remote_path))

    def list_files(self, remote_dir: str) -> dict[str, int]:
        return small_files.list_files(self._call, self.key(remote_dir))

    def remote_sha256(self, remote_path: str) -> str | None:
        return small_files.remote_sha256(self._call, self.key(remote_path))

    @property
    def check(self) -> str:
        return small_files.CHECK

    # --- verify

    def _verify(self, key: str, size: int, expected: str) -> bool:
        head = self._call("head_object", Key=key, ChecksumMode="ENABLED")
        remote = int(head["ContentLength"])
        if remote != size:
            raise TransientFailure(f"size mismatch: the server has {remote} bytes, local {size}", command="HEAD")
        checksum = head.get("ChecksumSHA256")
        if checksum and checksum.split("-")[0] != expected.split("-")[0]:
            raise TransientFailure(f"checksum mismatch: the server has {checksum}, local {expected}", command="HEAD")
        return True
