"""Connection: one FTP(S) control connection, logged in, with its commands mapped to the failure kinds.

Connect, secure (per `tls`), log in, PROT P, TYPE I; then single commands (`command`), flights of
commands (`batch`, when pipelining) and the passive port asked ahead for the next transfer
(`pipeline.ftp.passive_ahead`). Every failure leaves here as a `pipeline.transport.errors` kind,
through `mapped` (the one error map); one that leaves the connection out of step also drops it, so
`connected` turns False.

TLS: the context (certificates verified by default) is made at the first secure connect and reused
for every reconnect; loading the CA certificates costs some 20 ms of CPU, paid once, and not at all
for plain FTP.

Opened ahead (`open_ahead`): the TCP connection, the welcome and AUTH TLS without the login, for a
session that may not send its credentials yet (the sink's first login decides whether a password is
refused, once); `connect` then logs in on it, unless the server has spoken or hung up meanwhile.
"""

from __future__ import annotations

import contextlib
import ftplib
import posixpath
import socket
import ssl
import threading

from pipeline.ftp.client import FtpClient, make_context
from pipeline.ftp.errors import (
    ConnectionLost,
    ExceptionMap,
    FtpFailure,
    SessionFailure,
    classify,
    map_exceptions,
)
from pipeline.ftp.features import ServerFeatures
from pipeline.ftp.login import LOGIN_STEPS, log_in_one_flight, log_in_step_by_step
from pipeline.ftp.params import FtpParams
from pipeline.ftp.passive_ahead import PassiveAhead
from pipeline.ftp.quiet import still_quiet


class Connection(PassiveAhead):
    """One control connection to `params.host` and what it learned of the server (`features`).

    Not thread-safe, but for `abort`, which another thread may call to cut a stuck transfer.
    """

    def __init__(self, params: FtpParams, *, aborted: threading.Event | None = None) -> None:
        self.params = params
        self.features = ServerFeatures(f"{params.host}:{params.port}")
        #: set by `abort` (shared by the sink's sessions): a sender stops at its next block
        self.aborted = aborted or threading.Event()
        self.client: FtpClient | None = None
        self.root = posixpath.normpath("/" + params.remote_root.strip("/")) if params.remote_root else "/"
        self.welcome = ""
        #: FEAT's raw reply when the login asked it in its own flight (pipelining); taken by `take_login_feat`
        self.login_feat: str | None = None
        #: commands for the end of the next login's flight (pipelining), and their replies once it was read
        self.after_login: list[str] = []
        self.after_login_replies: list[str] = []
        self._context: ssl.SSLContext | None = None  # made at the first secure connect, then reused
        self._ahead: FtpClient | None = None  # opened by `open_ahead`, not logged in yet

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.sock is not None

    def absolute(self, remote_path: str) -> str:
        """A remote path made absolute: relative paths are taken under `remote_root`."""
        if remote_path.startswith("/"):
            return posixpath.normpath(remote_path)
        return posixpath.normpath(posixpath.join(self.root, remote_path))

    # --- open and close

    def connect(self) -> str:
        """Connect, secure, log in, PROT P, TYPE I; returns the welcome. Raises an `FtpFailure` subclass.

        A connection opened ahead (`open_ahead`) that is still quiet is logged in; otherwise a new one.
        """
        ahead, self._ahead = self._ahead, None
        self.close()
        if ahead is not None and not still_quiet(ahead):
            _drop(ahead)
            ahead = None
        client = ahead if ahead is not None else self._new_client()
        self.features.new_connection()
        self.login_feat = None
        self.client = client
        try:
            if ahead is None:
                self._open(client)
            self._log_in(client)
        except FtpFailure as failure:
            self._failed(failure)
            raise
        return self.welcome

    def open_ahead(self, *, quiet: bool = True) -> bool:
        """Connect and read the welcome (AUTH TLS too), without logging in; True when it is open.

        Nothing of the account is sent. A failure is kept `quiet` (`connect` tries again and says it),
        else raised as `connect` raises it.
        """
        if self._ahead is not None or self.connected:
            return True
        try:
            client = self._new_client()
            self._open(client)
        except FtpFailure as failure:
            if quiet:
                return False
            self._failed(failure)
            raise
        except Exception:  # a quiet attempt must not end its worker; `connect` says what it is
            if quiet:
                return False
            raise
        self._ahead = client
        return True

    def _new_client(self) -> FtpClient:
        p = self.params
        try:
            context = self._tls_context()
        except (OSError, ssl.SSLError, ValueError) as error:  # checked at start; changed on disk since
            raise SessionFailure(f"cannot use ftp.ca_file {p.ca_file!r}: {error}", command="TLS") from None
        return FtpClient(
            implicit=p.tls == "implicit",
            context=context,
            timeout=p.timeout,
            pipelining=p.pipelining,
            features=self.features,
        )

    def _failed(self, failure: FtpFailure) -> None:
        self.discard()
        if isinstance(failure, SessionFailure) or failure.command in ("CONNECT", "AUTH"):
            failure.reply = f"{self.params.host}:{self.params.port}: {failure.reply}"

    def _open(self, client: FtpClient) -> None:
        """Connect and read the welcome; AUTH TLS under explicit TLS. Nothing of the account is sent yet."""
        p = self.params
        try:
            with map_exceptions("CONNECT", secret=p.password):
                self.welcome = client.connect(p.host, p.port)
            if p.tls == "explicit":
                with map_exceptions("AUTH", secret=p.password):
                    client.auth()
        except BaseException:
            _drop(client)
            raise

    def _log_in(self, client: FtpClient) -> None:
        """The login steps, each mapped under its own name (the password masked in what they raise).

        When pipelining, everything after the welcome and AUTH goes in one flight (`pipeline.ftp.login`).
        """
        p = self.params
        if p.pipelining:
            after, self.after_login = self.after_login, []
            self.login_feat, self.after_login_replies = log_in_one_flight(client, p, after)
        else:
            log_in_step_by_step(client, p)

    def take_login_feat(self) -> str | None:
        """FEAT's raw reply read during the login (once; None when the login did not ask it)."""
        reply, self.login_feat = self.login_feat, None
        return reply

    def _tls_context(self) -> ssl.SSLContext | None:
        """The context of this connection's TLS sockets, made once; None for plain FTP, which needs none."""
        if self.params.secure and self._context is None:
            self._context = make_context(self.params)
        return self._context

    def close(self, *, wait_reply: bool = True) -> None:
        """QUIT politely, then close. Never raises.

        `wait_reply` False: QUIT without waiting for its 221 (a round trip): at the end of a run, where
        nothing follows on this connection and the process exits next. Not when a new session may follow
        at once: a server that caps sessions per address may still count this one until it has answered.
        """
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            _drop(ahead)
        client = self.client
        if client is None:
            return
        with contextlib.suppress(Exception):  # the connection is going away either way
            if client.sock is not None:
                client.sock.settimeout(min(self.params.timeout, 2.0))
                if wait_reply:
                    client.quit()
                else:
                    client.putcmd("QUIT")
        self.discard()

    def discard(self) -> None:
        """Drop the connection without a word (it is out of step or gone)."""
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def abort(self) -> None:
        """Cut the data and control sockets (from another thread): the owner's call fails at once.

        Sets `aborted` after the cut, so a sender woken from a bandwidth wait finds its socket
        closed rather than racing to finish the file.
        """
        client = self.client or self._ahead
        if client is not None:
            for sock in (client.data_socket, client.sock):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
        self.aborted.set()

    # --- commands

    def classify(self, error: BaseException, command: str) -> FtpFailure:
        """`classify`; the password is masked only in what the login steps raise (a server may echo it there).

        Masking it everywhere would give it away (a password "audio" would show as the `***` in
        every masked path).
        """
        return classify(error, command=command, secret=self._secret(command))

    def _secret(self, command: str) -> str:
        return self.params.password if command.split(" ", 1)[0].upper() in LOGIN_STEPS else ""

    def mapped(self, command: str, *, lost: bool = False, keep: tuple[type[BaseException], ...] = ()) -> ExceptionMap:
        """`map_exceptions` for this connection: failures of `command` classified, an unusable connection dropped."""
        return ExceptionMap(command, secret=self._secret(command), discard=self.discard, lost=lost, keep=keep)

    def require(self) -> FtpClient:
        """The client, or `ConnectionLost` when there is none."""
        if self.client is None:
            raise ConnectionLost("not connected")
        return self.client

    def command(self, line: str) -> str:
        """Send one command and return its reply (RNFR and REST take their 3xx); failures mapped."""
        client = self.require()
        with self.mapped(line):
            return client.voidcmd(line) if not line.startswith(("RNFR", "REST")) else client.sendcmd(line)

    def query(self, line: str) -> str:
        """Send one command and return its reply; a 5xx is raised as `ftplib.error_perm` for the caller to read."""
        client = self.require()
        with self.mapped(line, keep=(ftplib.error_perm,)):
            return client.sendcmd(line)

    def batch(self, lines: list[str]) -> list[str]:
        """Send `lines` in one write and return their raw replies in order (a refusal is a reply, not an error)."""
        client = self.require()
        with self.mapped(lines[0]):
            return client.batch(lines)

    def noop(self) -> str:
        """Keep an idle connection alive (servers drop silent ones)."""
        return self.command("NOOP")

    def drain_reply(self) -> None:
        """Read the reply to a transfer we cut short ourselves, to keep the connection in step."""
        client = self.client
        if client is None:
            return
        try:
            client.getresp()
        except ftplib.Error:
            pass
        except Exception:
            self.discard()


def _drop(client: FtpClient) -> None:
    with contextlib.suppress(Exception):
        client.close()
