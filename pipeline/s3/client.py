"""The boto3 client an `S3Transport` sends through, configured for the sink.

Apart from the transport because it is configuration, not delivery: botocore's own retries off (the
sink retries, with its backoff), its checksums only where S3 requires them (the transport computes and
sends its own SHA-256), the timeouts from the settings, and path-style addressing for an endpoint other
than AWS (MinIO, SeaweedFS and the like serve no bucket subdomains).
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from pipeline.s3.params import S3Params


def new_client(params: S3Params) -> Any:
    """A fresh S3 client for `params` (it sends nothing until its first call)."""
    p = params
    return boto3.session.Session().client(
        "s3",
        endpoint_url=p.endpoint_url or None,
        region_name=p.region,
        aws_access_key_id=p.access_key_id or None,
        aws_secret_access_key=p.secret_access_key or None,
        config=Config(
            connect_timeout=p.timeout,
            read_timeout=p.timeout,
            retries={"max_attempts": 1},  # the sink retries, with its backoff
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if p.endpoint_url else None,
        ),
    )
