"""Small files over an FTP session: a manifest put atomically, read back, and a folder listed (MLSD).

Put reuses the session's delivery (temporary name, rename, size check, folders made on the way)
from a local temporary copy, asks the next data port in the rename's flight, and, when the caller
reads the file back next, its RETR too (`pipeline.ftp.read_back`); get is SIZE (with the data port asked in its
flight) then RETR, or nothing for the file the session has just put and read back, or RETR at once
for one it has just put and checked but could not read back; the session stays in TYPE I
(set at login) so no TYPE I goes before the RETR. List walks MLSD, or, on a server without it
(vsftpd), NLST with a SIZE per name (a name without a size is taken for a folder). Failures are the
kinds of `pipeline.transport.errors`; a session that lost step is closed (the next call reconnects).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import ssl
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.ftp.delivery import Upload
from pipeline.ftp.errors import FtpFailure, PermanentFailure, classify
from pipeline.ftp.replies import is_unsupported
from pipeline.transport.base import Delivery, DeliveryProgress
from pipeline.transport.errors import TargetExists

if TYPE_CHECKING:
    from pipeline.ftp.client import FtpClient
    from pipeline.ftp.transport import FtpTransport


def put_small(
    ftp: FtpTransport,
    remote_path: str,
    data: bytes,
    *,
    new: bool = False,
    read_back: bool = False,
    atomic_rename: bool = True,
) -> bytes | None:
    """Store `data` at `remote_path` atomically (temporary name, rename, size check); `read_back`: and read it
    back in the rename's flight (`pipeline.ftp.read_back`), returning its bytes (None when not read there).

    `new`: the overwrite guard refuses an existing file (`TargetExists`), its SIZE in the STOR's flight (asked
    before the STOR when `atomic_rename` is off: stored under its name, as files are for a server without renames).
    """
    if new and not atomic_rename and ftp.sizes.size(remote_path) is not None:
        raise TargetExists(f"{remote_path} appeared on the server: read and merged first")
    handle, local = tempfile.mkstemp(prefix="beemon-small-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        # the delivery steps alone: the manifest is checked by reading it back, not by a HASH round trip
        refuse = (lambda existing: False) if new else None
        delivery = Delivery(
            local, remote_path, len(data), next_upload=lambda: True, may_replace=refuse, atomic_rename=atomic_rename
        )
        upload = Upload(ftp.parts, delivery, DeliveryProgress(), read_back=read_back)
        upload.run()
        return upload.read_back_data
    finally:
        with contextlib.suppress(OSError):
            os.unlink(local)


def get_small(ftp: FtpTransport, remote_path: str, *, exists: bool = False) -> bytes | None:
    """The content of `remote_path`, None when the server has no such file (550).

    `exists`: the session has just put it (its size checked): no SIZE first.
    """
    out = io.BytesIO()
    path = ftp.connection.absolute(remote_path)
    # Asked first: a pipelined RETR of a missing file races its 550 (the server closes the passive
    # port) against our data connection, which then fails as a lost connection instead.
    if not exists and _missing(ftp, path):
        return None
    try:
        _retrieve(ftp.connection.require(), f"RETR {path}", out.write)
    except Exception as error:
        failure = _failure(ftp, error, "RETR")
        if isinstance(failure, PermanentFailure):
            return None
        raise failure from None
    return out.getvalue()


def _missing(ftp: FtpTransport, path: str) -> bool:
    """Whether the server says `path` does not exist; the data port for the RETR asked in the same flight."""
    command = ftp.features.probe_command
    passive = ftp.connection.passive_request(lambda: True) if ftp.params.pipelining else None
    if command is None or passive is None:
        return ftp.sizes.size(path) is None and ftp.features.can_size
    probe, port = ftp.connection.batch([f"{command} {path}", passive])
    ftp.connection.keep_passive(port)  # unused when missing: the next STOR takes it (or `idle` drops it)
    return ftp.sizes.probed(path, command, probe) is None and ftp.features.can_size


def _retrieve(client: FtpClient, command: str, write: Callable[[bytes], object]) -> str:
    """ftplib's `retrbinary` without its TYPE I (the session is binary since its login)."""
    with client.transfercmd(command) as conn:
        while data := conn.recv(8192):
            write(data)
        if isinstance(conn, ssl.SSLSocket):
            conn.unwrap()
    return client.voidresp()


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
                ftp.connection.command("TYPE I")  # the refused MLSD's TYPE A went through
                return _list_by_names(ftp, root) if is_unsupported(failure.reply) else {}
            raise failure from None
        for name, facts in entries:
            kind = facts.get("type", "").lower()
            if kind == "dir":
                folders.append(posixpath.join(relative, name))
            elif kind == "file":
                found[posixpath.join(relative, name)] = int(facts.get("size", 0))
    ftp.connection.command("TYPE I")  # ftplib's MLSD switched to TYPE A: SIZE and the next STOR need binary again
    return found


#: how deep `_list_by_names` goes below the listed folder (a station's files are <date>/<sensor>/<name>)
NLST_DEPTH = 8


def _list_by_names(ftp: FtpTransport, root: str) -> dict[str, int]:
    """`list_files` without MLSD: NLST each folder, then SIZE each name; one without a size is a folder."""
    found: dict[str, int] = {}
    folders = [("", 0)]
    while folders:
        relative, depth = folders.pop()
        folder = posixpath.join(root, relative)
        try:
            names = ftp.connection.require().nlst(folder)
        except Exception as error:
            failure = _failure(ftp, error, "NLST")
            if isinstance(failure, PermanentFailure):  # no such folder (or a file NLST refuses to list)
                continue
            raise failure from None
        ftp.connection.command("TYPE I")  # NLST switched to TYPE A; some servers refuse SIZE in it
        for line in names:
            name = posixpath.basename(line.rstrip("/"))
            if name in ("", ".", "..") or line.rstrip("/") == folder:  # a file NLST'ed lists itself
                continue
            path = posixpath.join(relative, name)
            size = ftp.sizes.size(posixpath.join(root, path))
            if size is not None:
                found[path] = size
            elif depth < NLST_DEPTH:
                folders.append((path, depth + 1))
    return found


def _failure(ftp: FtpTransport, error: BaseException, command: str) -> FtpFailure:
    failure = error if isinstance(error, FtpFailure) else classify(error, command=command)
    if not failure.session_usable:
        ftp.close()
    return failure
