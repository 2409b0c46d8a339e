"""The seam between the sink and a server: what every transport offers, and the shared bandwidth cap.

`make_transport` is the one place that picks the protocol; the sink knows only `Transport`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pipeline.transport.base import Delivered, Delivery, DeliveryProgress, Transport

if TYPE_CHECKING:
    from pipeline.ftp.params import FtpParams
    from pipeline.transport.bandwidth import TokenBucket

__all__ = ["Delivered", "Delivery", "DeliveryProgress", "Transport", "make_transport"]


def make_transport(
    params: FtpParams,
    *,
    throttle: TokenBucket | None = None,
    use_sendfile: bool = True,
    aborted: threading.Event | None = None,
    checksum: bool = True,
) -> Transport:
    """A transport for `params` (FTP or FTPS today), not yet connected."""
    from pipeline.ftp.transport import FtpTransport  # the transport layer sits below ftp: imported on use

    return FtpTransport(params, throttle=throttle, use_sendfile=use_sendfile, aborted=aborted, checksum=checksum)
