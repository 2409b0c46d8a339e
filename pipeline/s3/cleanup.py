"""The start's clean-up: this station's incomplete multipart uploads (left by a crash or a kill), aborted.

Apart from the transport because it is per process, not per session: the first session to connect to
an (endpoint, bucket, station) does it, the others find it done. It touches only uploads under
`<prefix>/<station>/` (this station's own); without a station name it touches nothing.
"""

from __future__ import annotations

import logging
import posixpath
import threading

from pipeline.s3.multipart import Multipart
from pipeline.s3.params import S3Params

log = logging.getLogger("beemon.sink.s3")

#: (endpoint, bucket, scope) whose stale multipart uploads this process already aborted
_cleaned: set[tuple[str, str, str]] = set()
_cleaning = threading.Lock()


def abort_own_uploads(params: S3Params, multipart: Multipart) -> None:
    """Abort this station's incomplete multipart uploads, once per process."""
    p = params
    scope = posixpath.join(p.prefix.strip("/"), p.station, "").lstrip("/") if p.station else ""
    marker = (p.endpoint_url, p.bucket, scope)
    with _cleaning:
        if not scope or marker in _cleaned:
            return
        _cleaned.add(marker)
    aborted = 0
    for upload in multipart.uploads(scope):
        multipart.abort(upload["Key"], upload["UploadId"])
        aborted += 1
    if aborted:
        log.info("aborted %d incomplete multipart upload(s) under %s left by an earlier run", aborted, scope)
