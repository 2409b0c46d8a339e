"""An FTP(S) server on loopback, in a thread: the development default, the demo, and the tests' server.

pyftpdlib is a real, standards-following server, so what works against it exercises the same
protocol paths (EPSV/PASV, REST, RNFR/RNTO, SIZE, TLS) as a station's real server.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import TracebackType

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.ioloop import IOLoop
from pyftpdlib.servers import FTPServer

from pipeline.dev.hash_command import HashCommand, with_hash

#: Read and write everything under the home folder (no site commands).
FULL_PERMISSIONS = "elradfmwMT"
log = logging.getLogger("beemon.embedded")


def _quiet_pyftpdlib() -> None:
    """Keep pyftpdlib's per-command INFO lines out of the uploader's log (it configures stderr otherwise)."""
    logger = logging.getLogger("pyftpdlib")
    if not logger.handlers:
        logger.addHandler(logging.NullHandler())
    logger.setLevel(logging.WARNING)
    logger.propagate = False


class EmbeddedFtpServer:
    """A pyftpdlib server rooted at `root`, serving one user, until `stop()` (or the `with` block ends).

    `handler_class` may be a fault-injecting subclass of `FTPHandler` or `TLS_FTPHandler`; it is
    subclassed again here so that class attributes set for this server never leak to another.
    `port=0` picks a free port; read it from `.port` after `start()`. `poll_timeout` bounds one
    wait of the server loop (how soon `stop()` is noticed); scheduled callbacks, such as a reply
    held back on purpose, run on time regardless, since each wait also ends at the next one due.
    `hash_command` adds HASH (SHA-256) for `run` and `demo` (`pipeline.dev.hash_command`); the tests'
    servers go without unless they ask, as most real servers do.
    """

    def __init__(
        self,
        root: str | Path,
        username: str,
        password: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        handler_class: type[FTPHandler] = FTPHandler,
        handler_attributes: dict[str, object] | None = None,
        max_cons_per_ip: int = 0,
        poll_timeout: float = 0.05,
        hash_command: bool = False,
    ) -> None:
        if poll_timeout <= 0:
            raise ValueError(f"poll_timeout must be positive, not {poll_timeout}")
        self.root = Path(root)
        self.host = host
        self._requested_port = port
        self._username = username
        self._password = password
        self._handler_class = handler_class
        self._handler_attributes = dict(handler_attributes or {})
        self._max_cons_per_ip = max_cons_per_ip
        self._poll_timeout = poll_timeout
        self._hash_command = hash_command
        self._server: FTPServer | None = None
        self._port = port
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def __repr__(self) -> str:
        return f"EmbeddedFtpServer(root={str(self.root)!r}, host={self.host!r}, port={self.port!r})"

    @property
    def port(self) -> int:
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> EmbeddedFtpServer:
        """Bind and serve in a daemon thread; returns once the port is open."""
        self.root.mkdir(parents=True, exist_ok=True)
        authorizer = DummyAuthorizer()
        authorizer.add_user(self._username, self._password, str(self.root), perm=FULL_PERMISSIONS)
        attributes: dict[str, object] = {"authorizer": authorizer, "banner": "beemon embedded FTP server ready."}
        attributes.update(self._handler_attributes)
        bases: tuple[type[FTPHandler], ...] = (self._handler_class,)
        if self._hash_command:
            bases = (HashCommand, self._handler_class)
            attributes["proto_cmds"] = with_hash(self._handler_class)
        handler = type("EmbeddedHandler", bases, attributes)
        _quiet_pyftpdlib()
        server = FTPServer((self.host, self._requested_port), handler, ioloop=IOLoop())
        server.max_cons_per_ip = self._max_cons_per_ip
        self._server = server
        self._port = int(server.socket.getsockname()[1])
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="embedded-ftp", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        server = self._server
        assert server is not None
        timeout = self._poll_timeout
        while not self._stopping.is_set():
            # loop() returns the delay to the next scheduled callback (None if none): wait no longer.
            next_due = server.ioloop.loop(timeout=timeout, blocking=False)
            timeout = self._poll_timeout if next_due is None else max(0.0, min(self._poll_timeout, next_due))
        server.close_all()

    def stop(self) -> None:
        """Close every connection and the listening socket; the port is free on return."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> EmbeddedFtpServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_embedded_server(root: str | Path, username: str, password: str, port: int) -> EmbeddedFtpServer:
    """The embedded server of `ftp.host = "embedded"` on `port`, or on a free port when that one is taken.

    A second demo or development run on the same machine then still gets a server; the caller
    reads the port it got from `.port`. It answers HASH (SHA-256), so `run` and `demo` show the
    server-side check of the integrity rules.
    """
    for candidate in (port, 0):
        server = EmbeddedFtpServer(root, username, password, port=candidate, hash_command=True)
        try:
            return server.start()
        except OSError as error:
            if candidate == 0:
                raise
            log.warning("port %d is taken (%s): the embedded server takes a free one", port, error.strerror or error)
    raise AssertionError("unreachable")
