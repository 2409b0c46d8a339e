"""Resumes, in-process against the real servers: what a cut transfer left is continued, never trusted blindly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.s3.params import S3Params
from pipeline.s3.transport import S3Transport, b64
from pipeline.sftp.transport import SftpTransport
from pipeline.transport.base import Delivery, DeliveryProgress
from tests.seaweed import start_seaweed
from tests.sshd import start_sshd

MIB = 1024 * 1024


def test_sftp_resumes_from_the_part_less_one_window(tmp_path: Path) -> None:
    server = start_sshd(tmp_path / "sshd")
    try:
        params = server.sftp_params(blocksize=64 * 1024, requests=4)
        local = tmp_path / "x.h264"
        content = os.urandom(3 * MIB)
        local.write_bytes(content)
        folder = server.root / "st" / "2024-05-01" / "video"
        folder.mkdir(parents=True)
        (folder / ".x.h264.part").write_bytes(content[: 2 * MIB])  # what the cut attempt had sent
        transport = SftpTransport(params)
        transport.connect()
        report = transport.deliver(
            Delivery(str(local), "st/2024-05-01/video/x.h264", len(content), resume=True), DeliveryProgress()
        )
        assert report.resumed_from == 2 * MIB - 4 * 64 * 1024  # a window back: no hole survives reordered writes
        assert report.bytes_sent == len(content) - report.resumed_from
        assert (folder / "x.h264").read_bytes() == content and not (folder / ".x.h264.part").exists()
        transport.close()
    finally:
        server.stop()


def test_s3_multipart_resume_keeps_only_parts_whose_checksums_match(tmp_path: Path) -> None:
    server = start_seaweed(tmp_path / "seaweed")
    try:
        bucket = server.make_bucket("resume")
        local = tmp_path / "x.h264"
        content = os.urandom(13 * MIB)  # parts of 5, 5 and 3 MiB
        local.write_bytes(content)
        key = "lab/st/2024-05-01/video/x.h264"
        client = server.client()
        upload = client.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256")["UploadId"]
        good, stale = content[: 5 * MIB], os.urandom(5 * MIB)  # part 2 holds another version's bytes
        for number, body in ((1, good), (2, stale)):
            checksum = b64(hashlib.sha256(body).digest())
            client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload, PartNumber=number, Body=body, ChecksumSHA256=checksum
            )
        params = S3Params(
            bucket,
            server.endpoint_url,
            prefix="lab",
            access_key_id=server.access_key,
            secret_access_key=server.secret_key,
            multipart_threshold_mb=5,
            part_size_mb=5,
        )
        transport = S3Transport(params)
        transport.connect()  # no station: the start's clean-up leaves other stations' uploads alone
        report = transport.deliver(
            Delivery(str(local), "/" + key, len(content), resume=True, may_replace=lambda size: False),
            DeliveryProgress(),
        )
        assert (report.resumed_from, report.bytes_sent, report.verified) == (5 * MIB, 8 * MIB, True)
        assert server.objects(bucket) == {key: content}
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"].endswith("-3")
    finally:
        server.kill()
