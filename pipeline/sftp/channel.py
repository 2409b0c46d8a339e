"""One SSH connection with its SFTP channel, and the event loop that runs asyncssh for a worker thread.

asyncssh is asynchronous; the sink's workers are threads, so each channel owns an event loop that
runs only while its worker is inside a call (`abort`, from another thread, hands `conn.abort` to
that loop). Every call goes through `Channel.run`, the one place where asyncssh's errors become the
transports' failure kinds (`pipeline.sftp.errors.classify`) and a session no longer usable is
dropped.

Connecting: the host key must be in known_hosts (else `SessionFailure` saying how to add it), then
the password or key login, then the SFTP channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, TypeVar

import asyncssh

from pipeline.sftp.errors import classify, host_key_advice
from pipeline.sftp.params import SftpParams
from pipeline.transport.errors import ConnectionLost, LocalFileChanged, LocalFileGone, SessionFailure

log = logging.getLogger("beemon.sink.sftp")
logging.getLogger("asyncssh").setLevel(logging.WARNING)  # it logs every channel at INFO
T = TypeVar("T")


@cache
def preferred_ciphers() -> list[str]:
    """AES-GCM first where the CPU has AES instructions (x86 with AES-NI, ARMv8 with its crypto extension),
    ChaCha20-Poly1305 first elsewhere (a Raspberry Pi 4 has no AES instructions: ChaCha20 is the faster there)."""
    try:
        with open("/proc/cpuinfo") as info:
            flags = set(info.read().replace(":", " ").split())
    except OSError:
        flags = set()
    gcm = ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]
    chacha = ["chacha20-poly1305@openssh.com"]
    rest = ["aes128-ctr", "aes256-ctr"]
    return (gcm + chacha if "aes" in flags else chacha + gcm) + rest


class Channel:
    """The connection and SFTP client of one transport; not thread-safe except for `abort`."""

    def __init__(self, params: SftpParams, aborted: threading.Event) -> None:
        self.params = params
        self.aborted = aborted
        self._loop = asyncio.new_event_loop()
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self.welcome = ""

    def run(self, make: Callable[[], Awaitable[T]], command: str, *, timeout: float | None = -1) -> T:
        """Run one coroutine to its end on the owner's thread; errors become the transports' failure kinds."""
        limit = self.params.timeout if timeout == -1 else timeout

        async def bounded() -> T:
            return await asyncio.wait_for(make(), limit) if limit else await make()

        try:
            return self._loop.run_until_complete(bounded())
        except (LocalFileChanged, LocalFileGone):
            raise
        except Exception as error:
            failure = classify(error, self.params, command=command)
            if not failure.session_usable:
                self.discard()
            raise failure from None

    def client(self) -> asyncssh.SFTPClient:
        """The SFTP client; `ConnectionLost` when the session is gone."""
        if self._sftp is None:
            raise ConnectionLost("not connected", command="SFTP")
        return self._sftp

    @property
    def connected(self) -> bool:
        return self._sftp is not None

    def socket(self) -> socket.socket | None:
        """The connection's TCP socket (asyncio's view of it, which passes socket options through); None when closed."""
        conn = self._conn
        return None if conn is None else conn.get_extra_info("socket")

    def connect(self) -> str:
        """Check the host key, log in, open the SFTP channel; returns the server's version string."""
        self.close()
        p = self.params
        if not os.path.isfile(p.known_hosts_file):
            raise SessionFailure(
                f"{p.host}:{p.port}: no known_hosts file {p.known_hosts_file} to check the host key against;"
                f" {host_key_advice(p)}",
                command="HOSTKEY",
            )
        try:
            self._conn, self._sftp = self.run(self._open_session, "CONNECT", timeout=p.timeout * 2)
        except SessionFailure:
            raise
        except ConnectionLost as failure:
            if not failure.reply.startswith(f"{p.host}:"):
                failure.reply = f"{p.host}:{p.port}: {failure.reply}"
            raise
        self.welcome = str(self._conn.get_extra_info("server_version") or "SSH")
        return self.welcome

    async def _open_session(self) -> tuple[asyncssh.SSHClientConnection, asyncssh.SFTPClient]:
        p = self.params
        keys: Any = [p.key_file] if p.key_file else (None if p.password else ())
        conn = await asyncssh.connect(
            p.host,
            p.port,
            username=p.username or None,
            password=p.password or None,
            client_keys=keys,
            known_hosts=p.known_hosts_file,
            encryption_algs=preferred_ciphers(),
            connect_timeout=p.timeout,
            keepalive_interval=0,
        )
        try:
            return conn, await conn.start_sftp_client()
        except BaseException:
            conn.abort()
            raise

    def close(self) -> None:
        """Close the SFTP channel and the connection; never raises."""
        conn = self._conn
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.close()
            self._loop.run_until_complete(asyncio.wait_for(conn.wait_closed(), 2.0))
        self.discard()

    def discard(self) -> None:
        """Forget the session at once (it failed in a way that leaves it unusable)."""
        conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.abort()

    def abort(self) -> None:
        """Cut the connection from another thread: the owner's call in progress fails at once."""
        self.aborted.set()
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing runs on it
                self._loop.call_soon_threadsafe(conn.abort)
