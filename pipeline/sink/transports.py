"""`make_transport`: the one place that picks the protocol a sink worker speaks.

It sits in the sink, above the protocol packages (the transport layer below them only defines
the interface), so that adding a protocol is one branch here and one package beside `pipeline.ftp`.
"""

from __future__ import annotations

import threading

from pipeline.ftp.params import FtpParams
from pipeline.ftp.transport import FtpTransport
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Transport


def make_transport(
    params: FtpParams,
    *,
    throttle: TokenBucket | None = None,
    use_sendfile: bool = True,
    aborted: threading.Event | None = None,
) -> Transport:
    """A transport for `params` (FTP or FTPS today), not yet connected."""
    return FtpTransport(params, throttle=throttle, use_sendfile=use_sendfile, aborted=aborted)
