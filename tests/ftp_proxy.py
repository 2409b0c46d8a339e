"""A fault-injecting TCP proxy in front of a real FTP server (ProFTPD, vsftpd): it cuts data connections.

A server we cannot patch still gets a transfer cut in the middle the way a flaky link cuts it: the
proxy relays the control connection, rewrites each passive reply (227/229) to a port of its own,
relays the data connection behind it, and after `cut_after_bytes` of an upload resets both sides
(`cuts` times). The server then holds a prefix of the file, as after a real outage. Plain FTP only
(under TLS the replies cannot be read). `before_command` sees each command line first (to corrupt
a file the server holds, or to hold the command back). `journal` holds every command line and every reply's first
line, in order (client lines prefixed "> ", server lines "< ").
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_EPSV = re.compile(r"^229 .*\(\|\|\|(\d+)\|\)")
_PASV = re.compile(r"^227 .*?(\d+),(\d+),(\d+),(\d+),(\d+),(\d+)")


@dataclass
class FtpProxy:
    upstream_port: int
    upstream_host: str = "127.0.0.1"
    cut_after_bytes: int = 0
    cuts: int = 0
    #: called with each command line before it is relayed (it may change the server's files, or block)
    before_command: Callable[[str], None] | None = None
    journal: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._listener = _listen()
        self.port = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def commands(self, verb: str) -> list[str]:
        with self.lock:
            return [line[2:] for line in self.journal if line.startswith(f"> {verb}")]

    def replies(self, start: str) -> list[str]:
        with self.lock:
            return [line[2:] for line in self.journal if line.startswith(f"< {start}")]

    def close(self) -> None:
        self._closed.set()
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    # --- control connections

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection((self.upstream_host, self.upstream_port), timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._sockets += [client, server]
            threading.Thread(target=self._commands, args=(client, server), daemon=True).start()
            threading.Thread(target=self._replies, args=(server, client), daemon=True).start()

    def _commands(self, client: socket.socket, server: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for line in client.makefile("rb"):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                self._note("> " + text)
                if self.before_command is not None:
                    self.before_command(text)
                server.sendall(line)
        _close(server)

    def _replies(self, server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            for raw in server.makefile("rb"):
                line = raw.decode("utf-8", "replace")
                self._note("< " + line.rstrip("\r\n"))
                epsv, pasv = _EPSV.match(line), _PASV.match(line)
                if epsv:
                    raw = f"229 Entering Extended Passive Mode (|||{self._data_port(int(epsv.group(1)))}|)\r\n".encode()
                elif pasv:
                    numbers = [int(n) for n in pasv.groups()]
                    port = self._data_port(numbers[4] * 256 + numbers[5])
                    raw = f"227 Entering Passive Mode (127,0,0,1,{port // 256},{port % 256}).\r\n".encode()
                client.sendall(raw)
        _close(client)

    def _note(self, line: str) -> None:
        with self.lock:
            self.journal.append(line)

    # --- data connections

    def _data_port(self, upstream: int) -> int:
        """A one-shot listener relaying to the server's passive port `upstream`."""
        listener = _listen()
        self._sockets.append(listener)
        threading.Thread(target=self._data, args=(listener, upstream), daemon=True).start()
        return listener.getsockname()[1]

    def _data(self, listener: socket.socket, upstream: int) -> None:
        listener.settimeout(30)
        try:
            client, _ = listener.accept()
            server = socket.create_connection((self.upstream_host, upstream), timeout=10)
        except OSError:
            return
        finally:
            listener.close()
        server.settimeout(None)
        client.settimeout(None)
        self._sockets += [client, server]
        threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()
        self._pump(client, server, True)

    def _pump(self, source: socket.socket, target: socket.socket, upload: bool) -> None:
        total = 0
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                if upload and self.cut_after_bytes and self.cuts > 0 and total + len(chunk) >= self.cut_after_bytes:
                    with self.lock:
                        cut = self.cuts > 0
                        self.cuts -= cut
                    if cut:
                        keep = max(0, self.cut_after_bytes - total)
                        target.sendall(chunk[:keep])
                        self._note(f"! cut after {total + keep} bytes")
                        _reset(source)
                        _close(target)
                        return
                target.sendall(chunk)
                total += len(chunk)
        _close(target)


def _listen() -> socket.socket:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset: the client's next send fails, as when a link drops."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
