"""botocore's errors mapped to the transports' failure kinds: the one place that knows S3's error codes.

- Credentials or bucket wrong when connecting (`InvalidAccessKeyId`, `SignatureDoesNotMatch`,
  `AccessDenied`, `NoSuchBucket`): `SessionFailure`, a person must act.
- `AccessDenied` for one object: `PermanentFailure` (the file is parked, tried again later).
- A body that does not match its checksum (`BadDigest`...), throttling, server errors, a vanished
  multipart upload: `TransientFailure`, tried again after a backoff.
- No connection, a timeout, a connection closed: `ConnectionLost`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.transport.errors import (
    ConnectionLost,
    PermanentFailure,
    SessionFailure,
    TransientFailure,
    TransportFailure,
    scrub,
)

if TYPE_CHECKING:
    from pipeline.s3.params import S3Params

CREDENTIALS = frozenset({"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "AccessDenied"})
TRANSIENT = frozenset(
    {
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
        "SlowDown",
        "ServiceUnavailable",
        "InternalError",
        "RequestTimeout",
        "NoSuchUpload",
        "QuotaExceeded",
        "OperationAborted",
    }
)


def error_code(error: BaseException) -> str:
    """The S3 error code of a botocore `ClientError` (`"NoSuchKey"`, `"412"`...), else empty."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def classify(error: BaseException, params: S3Params, *, command: str) -> TransportFailure:
    """Map a botocore error raised by `command` (an S3 operation name) to the sink's failure kinds."""
    from botocore import exceptions as boto

    if isinstance(error, TransportFailure):
        return error
    text = scrub(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__, params.password)
    if isinstance(error, boto.ClientError):
        code = error_code(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if command == "CONNECT" and (code in CREDENTIALS or code == "NoSuchBucket" or status in (403, 404)):
            return SessionFailure(f"{params.endpoint_url or 'AWS'} bucket {params.bucket}: {text}", command=command)
        if code in CREDENTIALS - {"AccessDenied"}:
            return SessionFailure(text, command=command)
        if code in TRANSIENT or status >= 500 or status in (408, 429):
            return TransientFailure(text, command=command)
        return PermanentFailure(text, command=command)
    if isinstance(error, boto.NoCredentialsError | boto.PartialCredentialsError):
        return SessionFailure(f"{text} (set s3.access_key_id and BEEMON_S3__SECRET_ACCESS_KEY)", command=command)
    if isinstance(error, boto.EndpointConnectionError | boto.ConnectTimeoutError):
        return ConnectionLost(f"{params.host}:{params.port}: {text}", command=command)
    if isinstance(error, boto.BotoCoreError | OSError):
        return ConnectionLost(text, command=command)
    return ConnectionLost(f"{type(error).__name__}: {text}", command=command)
