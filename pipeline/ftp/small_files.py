"""Small files over an FTP session: a manifest put atomically, read back, and a folder listed (MLSD).

Put reuses the session's delivery (temporary name, rename, size check, folders made on the way)
from a local temporary copy; get is SIZE then RETR; list walks MLSD. Failures are the kinds of
`pipeline.transport.errors`; a session that lost step is closed (the next call reconnects).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import tempfile
from typing import TYPE_CHECKING

from pipeline.ftp.delivery import Upload
from pipeline.ftp.errors import FtpFailure, PermanentFailure, classify
from pipeline.transport.base import Delivery, DeliveryProgress

if TYPE_CHECKING:
    from pipeline.ftp.transport import FtpTransport


def put_small(ftp: FtpTransport, remote_path: str, data: bytes) -> None:
    """Store `data` at `remote_path` atomically (temporary name, rename, size check)."""
    handle, local = tempfile.mkstemp(prefix="beemon-small-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        # the delivery steps alone: the manifest is checked by reading it back, not by a HASH round trip
        Upload(ftp.parts, Delivery(local, remote_path, len(data)), DeliveryProgress()).run()
    finally:
        with contextlib.suppress(OSError):
            os.unlink(local)


def get_small(ftp: FtpTransport, remote_path: str) -> bytes | None:
    """The content of `remote_path`, None when the server has no such file (550)."""
    out = io.BytesIO()
    path = ftp.connection.absolute(remote_path)
    # Asked first: a pipelined RETR of a missing file races its 550 (the server closes the passive
    # port) against our data connection, which then fails as a lost connection instead.
    if ftp.sizes.size(path) is None and ftp.features.can_size:
        return None
    try:
        ftp.connection.require().retrbinary(f"RETR {path}", out.write)
    except Exception as error:
        failure = _failure(ftp, error, "RETR")
        if isinstance(failure, PermanentFailure):
            return None
        raise failure from None
    return out.getvalue()


def list_files(ftp: FtpTransport, remote_dir: str) -> dict[str, int]:
    """Every file under `remote_dir` by path relative to it, with its size (MLSD, folder by folder)."""
    root = ftp.connection.absolute(remote_dir)
    found: dict[str, int] = {}
    folders = [""]
    while folders:
        relative = folders.pop()
        try:
            entries = list(ftp.connection.require().mlsd(posixpath.join(root, relative), facts=["type", "size"]))
        except Exception as error:
            failure = _failure(ftp, error, "MLSD")
            if isinstance(failure, PermanentFailure) and not relative:
                return {}
            raise failure from None
        for name, facts in entries:
            kind = facts.get("type", "").lower()
            if kind == "dir":
                folders.append(posixpath.join(relative, name))
            elif kind == "file":
                found[posixpath.join(relative, name)] = int(facts.get("size", 0))
    ftp.connection.command("TYPE I")  # ftplib's MLSD switched to TYPE A: SIZE and the next STOR need binary again
    return found


def _failure(ftp: FtpTransport, error: BaseException, command: str) -> FtpFailure:
    failure = error if isinstance(error, FtpFailure) else classify(error, command=command)
    if not failure.session_usable:
        ftp.close()
    return failure
