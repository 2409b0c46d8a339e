"""`make_transport`: the one place that picks the protocol a sink worker speaks (`sink.kind`).

It sits in the sink, above the protocol packages (the transport layer below them only defines
the interface), so that adding a protocol is one branch here and one package beside `pipeline.ftp`.
Each protocol's module is imported on use: the FTP install has neither asyncssh nor boto3 (the
`[sftp]` and `[s3]` extras).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pipeline.ftp.params import FtpParams
from pipeline.s3.params import S3Params
from pipeline.sftp.params import SftpParams

if TYPE_CHECKING:
    from pipeline.transport.bandwidth import TokenBucket
    from pipeline.transport.base import Transport

#: Where to deliver: the params of the table `sink.kind` names (each has `login_check`, `reach_check`).
TargetParams = FtpParams | SftpParams | S3Params


def make_transport(
    params: TargetParams,
    *,
    throttle: TokenBucket | None = None,
    use_sendfile: bool = True,
    aborted: threading.Event | None = None,
    checksum: bool = True,
    atomic_rename: bool = True,
) -> Transport:
    """A transport for `params`, not yet connected: FTP(S), SFTP or S3 by the params' type.

    `checksum`: FTP and SFTP hash what they send (the SHA-256 for the day's manifest; FTP also checks
    it by the server's HASH where offered); S3 always sends its SHA-256 checksums, so it takes no switch.
    `atomic_rename` False: FTP and SFTP store the day's manifest under its name too (`upload.atomic_rename`)."""
    if isinstance(params, SftpParams):
        from pipeline.sftp.transport import SftpTransport

        return SftpTransport(params, throttle=throttle, aborted=aborted, checksum=checksum, atomic_rename=atomic_rename)
    if isinstance(params, S3Params):
        from pipeline.s3.transport import S3Transport

        return S3Transport(params, throttle=throttle, aborted=aborted)
    from pipeline.ftp.transport import FtpTransport

    return FtpTransport(
        params,
        throttle=throttle,
        use_sendfile=use_sendfile,
        aborted=aborted,
        checksum=checksum,
        atomic_rename=atomic_rename,
    )
