"""asyncssh's errors mapped to the transports' failure kinds: the one place that knows them (cf. `ftp.errors`).

- A refused host key or login, or a key file that cannot be read: `SessionFailure` (a person must act);
  the host-key message says how to add the key to known_hosts.
- The connection gone, a timeout, a socket error: `ConnectionLost` (reconnect with backoff).
- The server refusing a request for this file (permission denied, no such folder, an operation it
  does not support): `PermanentFailure` (the file is parked and tried again later).
- Any other SFTP status (OpenSSH answers a full disk with a bare "Failure"): `TransientFailure`,
  the session still usable.

Messages carry no password: asyncssh never echoes it, and `scrub` takes it out of what comes back.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pipeline.transport.errors import (
    ConnectionLost,
    PermanentFailure,
    SessionFailure,
    TransientFailure,
    TransportFailure,
    scrub,
)

if TYPE_CHECKING:
    from pipeline.sftp.params import SftpParams


def host_key_advice(params: SftpParams) -> str:
    """How to trust the server's key: the one command, with the host and port in force."""
    port = f"-p {params.port} " if params.port != 22 else ""
    return (
        f"check the key with the server's administrator, then add it: ssh-keyscan {port}{params.host}"
        f" >> {params.known_hosts_file} (or set sftp.known_hosts)"
    )


def classify(error: BaseException, params: SftpParams, *, command: str) -> TransportFailure:
    """Map an asyncssh / socket / timeout error raised by `command` to the sink's failure kinds."""
    import asyncssh

    if isinstance(error, TransportFailure):
        return error
    text = scrub(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__, params.password)
    where = f"{params.host}:{params.port}"
    if isinstance(error, asyncssh.HostKeyNotVerifiable):
        return SessionFailure(
            f"{where}: the server's host key is not in {params.known_hosts_file} ({text}); {host_key_advice(params)}",
            command="HOSTKEY",
        )
    if isinstance(error, asyncssh.PermissionDenied):
        return SessionFailure(f"{where}: login refused ({text})", command="LOGIN")
    if isinstance(error, asyncssh.KeyImportError | asyncssh.KeyEncryptionError):
        return SessionFailure(f"cannot use sftp.key_file {params.key_file!r}: {text}", command="LOGIN")
    if isinstance(error, asyncssh.SFTPConnectionLost | asyncssh.SFTPNoConnection):
        return ConnectionLost(text, command=command)
    if isinstance(error, asyncssh.SFTPPermissionDenied | asyncssh.SFTPNoSuchFile | asyncssh.SFTPOpUnsupported):
        return PermanentFailure(text, command=command)
    if isinstance(error, asyncssh.SFTPError):
        return TransientFailure(text, command=command)
    if isinstance(error, asyncssh.DisconnectError | asyncssh.ChannelOpenError):
        return ConnectionLost(text, command=command)
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return ConnectionLost(f"timed out ({text})" if text != "TimeoutError" else "timed out", command=command)
    if isinstance(error, OSError | EOFError | asyncio.IncompleteReadError):
        return ConnectionLost(f"{where}: {text}" if command == "CONNECT" else text, command=command)
    return ConnectionLost(f"{type(error).__name__}: {text}", command=command)
