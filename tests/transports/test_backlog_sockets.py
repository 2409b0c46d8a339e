"""Through the transport seam, against real servers: the sockets that carry a backlog file keep few unsent
bytes (TCP_NOTSENT_LOWAT, read back from the kernel), those that carry a live file do not.

FTP opens a data connection per file: the bound is read on the very socket the bytes go through.
SFTP sends every file over its one SSH connection: the bound follows what the connection carries.
(S3 is left out: its bytes go through botocore's pooled HTTP connections, which the transport never sees.)
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.ftp.transport import FtpTransport
from pipeline.sftp.transport import SftpTransport
from pipeline.transport.bandwidth import LiveFirst, SessionThrottle
from pipeline.transport.base import Delivery, DeliveryProgress
from pipeline.transport.unsent import BACKLOG_UNSENT_BYTES, TCP_NOTSENT_LOWAT, unsent_limit
from tests.helpers import params_for
from tests.sshd import start_sshd

pytestmark = pytest.mark.skipif(TCP_NOTSENT_LOWAT is None, reason="this platform has no TCP_NOTSENT_LOWAT")


class Recording(SessionThrottle):
    """The sink's throttle, noting the kernel's bound on each socket its sender hands bytes to."""

    def __init__(self, gate: LiveFirst) -> None:
        super().__init__(gate)
        self.bounds: list[int | None] = []

    def sendall(self, sock: socket.socket, data: memoryview, wait: Callable[[float], object] = time.sleep) -> None:
        self.bounds.append(unsent_limit(sock))
        super().sendall(sock, data, wait)


def test_ftp_a_backlog_file_goes_through_a_bounded_data_socket_a_live_one_through_an_unbounded_one(
    ftp_server, outbox, credentials
):
    local = outbox / "a.h264"
    local.write_bytes(os.urandom(600_000))
    throttle = Recording(LiveFirst())
    transport = FtpTransport(params_for(ftp_server, credentials), throttle=throttle)
    transport.connect()
    try:
        for backlog, name in ((True, "backlog.h264"), (False, "live.h264"), (True, "backlog-2.h264")):
            throttle.backlog = backlog
            transport.deliver(Delivery(str(local), name, 600_000), DeliveryProgress())
    finally:
        transport.close()
    per_file = [set(throttle.bounds[i : i + 3]) for i in range(0, 9, 3)]  # 3 blocks of 256 KiB per file
    assert per_file == [{BACKLOG_UNSENT_BYTES}, {0}, {BACKLOG_UNSENT_BYTES}], throttle.bounds


def test_sftp_the_connection_is_bounded_while_it_carries_backlog_and_not_while_it_carries_a_live_file(
    tmp_path: Path,
):
    server = start_sshd(tmp_path / "sshd")
    try:
        params = server.sftp_params()
        local = tmp_path / "a.h264"
        local.write_bytes(os.urandom(300_000))
        throttle = LiveFirst().for_session()
        transport = SftpTransport(params, throttle=throttle)
        transport.connect()
        seen = []
        for backlog, name in ((True, "backlog.h264"), (False, "live.h264"), (True, "backlog-2.h264")):
            throttle.backlog = backlog
            transport.deliver(Delivery(str(local), f"st/2024-05-01/video/{name}", 300_000), DeliveryProgress())
            seen.append(unsent_limit(transport.channel.socket()))
        transport.close()
        assert seen == [BACKLOG_UNSENT_BYTES, 0, BACKLOG_UNSENT_BYTES]
    finally:
        server.stop()
