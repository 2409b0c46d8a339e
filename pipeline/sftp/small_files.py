"""Small files over an SFTP session: a manifest put atomically, read back, a folder listed, a file hashed locally.

Put is a delivery in miniature: folders made on the way, the bytes written to the temporary name
and synced, posix-rename onto the final name, a size check (with `upload.atomic_rename` off, written
under the final name itself). Get reads the whole file; list walks
the folders one request each (so each is bounded by the timeout). OpenSSH offers no hash
extension, so the server cannot hash: the SHA-256 recorded in a manifest is the sender's
(`hash_local`), and the check after a delivery is the size.
"""

from __future__ import annotations

import posixpath
import stat
from typing import TYPE_CHECKING, BinaryIO

import asyncssh

from pipeline.sftp.store import Digest
from pipeline.transport.base import Delivery
from pipeline.transport.naming import temp_name

if TYPE_CHECKING:
    from pipeline.sftp.transport import SftpTransport

READ_BLOCK = 1 << 20


def hash_local(local: BinaryIO, length: int, digest: Digest) -> None:
    """Feed `local[:length]` to `digest` (the prefix a resume does not send again)."""
    local.seek(0)
    left = length
    while left and (block := local.read(min(READ_BLOCK, left))):
        digest.update(block)
        left -= len(block)


def put_small(sftp: SftpTransport, remote_path: str, data: bytes, *, atomic_rename: bool = True) -> None:
    """Store `data` at `remote_path` atomically: temporary name, sync, posix-rename, size check.

    `atomic_rename` off (a server that refuses renames): written under its own name, synced, size checked, as
    the files are then (a cut write is mended by the next put, which writes it whole again).
    """
    target = sftp.absolute(remote_path)
    staging = temp_name(target) if atomic_rename else target
    sftp.store.makedirs(posixpath.dirname(target))

    async def write() -> None:
        async with sftp.channel.client().open(staging, "wb") as handle:
            await handle.write(data, 0)
            await sftp.store.sync(handle)

    sftp.channel.run(write, "WRITE")
    if atomic_rename:
        sftp.store.rename(staging, target, Delivery(staging, remote_path, len(data)))
    sftp.store.verify(target, len(data))


def get_small(sftp: SftpTransport, remote_path: str) -> bytes | None:
    """The content of `remote_path`, None when the server has no such file."""
    path = sftp.absolute(remote_path)

    async def read() -> bytes | None:
        try:
            async with sftp.channel.client().open(path, "rb") as handle:
                return bytes(await handle.read())
        except asyncssh.SFTPNoSuchFile:
            return None

    return sftp.channel.run(read, "READ")


def list_files(sftp: SftpTransport, remote_dir: str) -> dict[str, int]:
    """Every file under `remote_dir` by path relative to it, with its size; {} when there is no such folder."""
    root = sftp.absolute(remote_dir)
    found: dict[str, int] = {}
    folders = [""]
    while folders:
        relative = folders.pop()
        entries = sftp.channel.run(lambda relative=relative: _entries(sftp, posixpath.join(root, relative)), "READDIR")
        for name, attrs in entries:
            path = posixpath.join(relative, name)
            if attrs.permissions is not None and stat.S_ISDIR(attrs.permissions):
                folders.append(path)
            elif attrs.permissions is None or stat.S_ISREG(attrs.permissions):
                found[path] = int(attrs.size or 0)
    return found


async def _entries(sftp: SftpTransport, folder: str) -> list[tuple[str, asyncssh.SFTPAttrs]]:
    """The entries of one folder; none when it is gone (absent, or removed during the walk)."""
    try:
        names = await sftp.channel.client().readdir(folder)
    except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath):
        return []
    return [(str(n.filename), n.attrs) for n in names if n.filename not in (".", "..")]
