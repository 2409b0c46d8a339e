"""The seam between the sink and a server: what every transport offers, and the shared bandwidth cap.

`make_transport` is the one place that picks the protocol; the sink knows only `Transport`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pipeline.transport.base import Delivered, Delivery, DeliveryProgress, Transport

if TYPE_CHECKING:
    from pipeline.ftp.params import FtpParams
    from pipeline.s3.params import S3Params
    from pipeline.sftp.params import SftpParams
    from pipeline.transport.bandwidth import TokenBucket

__all__ = ["Delivered", "Delivery", "DeliveryProgress", "Transport", "make_transport"]


def make_transport(
    params: FtpParams | SftpParams | S3Params,
    *,
    throttle: TokenBucket | None = None,
    use_sendfile: bool = True,
    aborted: threading.Event | None = None,
) -> Transport:
    """A transport for `params`, not yet connected: FTP(S), SFTP or S3 by the params' `kind` (`sink.kind`).

    Each protocol's module is imported here, on use: the transport layer sits below them, and the
    FTP install has neither asyncssh nor boto3 (the `[sftp]` and `[s3]` extras).
    """
    kind = getattr(params, "kind", "ftp")
    if kind == "sftp":
        from pipeline.sftp.transport import SftpTransport

        return SftpTransport(params, throttle=throttle, aborted=aborted)  # type: ignore[arg-type]
    if kind == "s3":
        from pipeline.s3.transport import S3Transport

        return S3Transport(params, throttle=throttle, aborted=aborted)  # type: ignore[arg-type]
    from pipeline.ftp.transport import FtpTransport

    return FtpTransport(params, throttle=throttle, use_sendfile=use_sendfile, aborted=aborted)
