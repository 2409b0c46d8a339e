"""FTP(S) behind the transport seam: `FtpTransport` speaks `Transport` (pipeline.transport.base) via `UploadSession`."""

from __future__ import annotations

import posixpath
import threading

from pipeline.ftp import small_files
from pipeline.ftp.checks import DeliveryCheck
from pipeline.ftp.errors import PermanentFailure
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadSession, temp_name
from pipeline.transport.bandwidth import TokenBucket
from pipeline.transport.base import Delivered, Delivery, DeliveryProgress


class FtpTransport:
    """One persistent FTP(S) session as a sink worker uses it (see `UploadSession` for the protocol's steps)."""

    def __init__(
        self,
        params: FtpParams,
        *,
        throttle: TokenBucket | None = None,
        use_sendfile: bool = True,
        aborted: threading.Event | None = None,
        checksum: bool = True,
    ) -> None:
        self.session = UploadSession(params, throttle=throttle, use_sendfile=use_sendfile, aborted=aborted)
        self.session.checksum = checksum
        self.checks = DeliveryCheck(checksum=checksum)

    @property
    def connected(self) -> bool:
        return self.session.connected

    def connect(self) -> str:
        welcome = self.session.connect()
        self.checks.learn(self.session)
        return welcome

    @property
    def check(self) -> str:
        return self.checks.check

    def deliver(self, delivery: Delivery, progress: DeliveryProgress) -> Delivered:
        report = self.session.upload(
            delivery.local_path,
            delivery.remote_path,
            delivery.size,
            resume=delivery.resume,
            part_complete=delivery.part_complete,
            atomic_rename=delivery.atomic_rename,
            verify_size=delivery.verify_size,
            next_upload=delivery.next_upload,
            progress=progress,
            may_replace=delivery.may_replace,
        )
        return self.checks.after(self.session, delivery, report)

    def put_small(self, remote_path: str, data: bytes) -> None:
        small_files.put_small(self.session, remote_path, data)

    def get_small(self, remote_path: str) -> bytes | None:
        return small_files.get_small(self.session, remote_path)

    def list_files(self, remote_dir: str) -> dict[str, int]:
        return small_files.list_files(self.session, remote_dir)

    def remote_sha256(self, remote_path: str) -> str | None:
        return self.checks.remote_sha256(self.session, remote_path)

    def target_in_folder(self, remote_path: str, name: str) -> str:
        return self.session.target_in_folder(remote_path, name)

    def keep_alive(self) -> None:
        self.session.noop()

    def idle(self) -> None:
        self.session.drop_passive()

    def remove_stale_temp(self, remote_path: str) -> None:
        staging = temp_name(self.session.absolute(remote_path))
        try:
            self.session.delete(staging)
        except PermanentFailure:  # 550: no such file, nothing to remove
            return
        self.session.forget_directories(posixpath.dirname(staging))

    def close(self) -> None:
        self.session.close()

    def abort(self) -> None:
        self.session.abort()
