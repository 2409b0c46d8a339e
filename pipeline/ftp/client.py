"""FtpClient: ftplib's FTP_TLS with what real servers and slow links need.

- TLS session reuse: data connections resume the control connection's TLS session (vsftpd's
  `require_ssl_reuse` and FileZilla Server refuse them otherwise; stock ftplib does not).
- Implicit TLS: the socket is wrapped before the welcome is read.
- Passive mode: EPSV, falling back to PASV for the client's life when refused; the address PASV
  announces is ignored for the control connection's peer (NAT'd servers announce private ones).
- Pipelining (optional): the transfer command goes out before the data connection is opened
  (with any commands whose answers the caller wants before the data flows: `transfer_after`;
  on plain FTP a small file's data may follow at once, before the 150: `start_transfer`,
  `read_opening`, see `pipeline.ftp.early`), and `batch` sends several commands in one write and
  reads their replies in order; a passive port asked for in a batch (`take_passive_reply`) serves
  the next transfer.
- Replies are read from the control socket into a byte buffer of the client's own (`getline`),
  not through ftplib's text file over the socket: the same lines, at a fraction of the CPU a
  reply costs (the sink reads some seven replies per small file, under the GIL).

Used for plain FTP too (it never sends AUTH then), so one class covers the three modes.
"""

from __future__ import annotations

import ftplib
import logging
import socket
import ssl

from pipeline.ftp.features import ServerFeatures
from pipeline.ftp.params import FtpParams
from pipeline.ftp.replies import EPSV_REFUSED, UNSUPPORTED, passive_address, reply_code, reply_error

__all__ = ["UNSUPPORTED", "FtpClient", "make_context", "reply_error"]

log = logging.getLogger("beemon.sink.session")

#: The most bytes taken from the control socket at once (as ftplib's buffered text file does).
_RECEIVE = 8192


class FtpClient(ftplib.FTP_TLS):
    """One control connection (see the module docstring); `data_socket` is the transfer in progress."""

    def __init__(
        self,
        *,
        implicit: bool,
        context: ssl.SSLContext | None,
        timeout: float,
        pipelining: bool,
        features: ServerFeatures | None = None,
    ) -> None:
        """`context` None: plain FTP only (ftplib's unverified default context is dropped, so any TLS step fails).

        `features`: the session's record of what the server supports (EPSV is learned here).
        """
        super().__init__(context=context, timeout=timeout)
        self.context: ssl.SSLContext | None = context
        self.implicit = implicit
        self.pipelining = pipelining
        self.features = features if features is not None else ServerFeatures()
        self.data_socket: socket.socket | None = None
        self.last_data_session_reused: bool | None = None
        #: A passive address asked for ahead of time (`take_passive_reply`), used by the next transfer.
        self.passive_ahead: tuple[str, int] | None = None
        self._peer: tuple[socket.socket, tuple[str, int]] | None = None  # (the control socket, its peer)
        #: Replies left for later (a read-back's 226, `pipeline.ftp.read_back`): read before the next one.
        self.deferred_replies = 0
        self._received = bytearray()  # bytes of `_received_from` (the control socket) not read as lines yet
        self._received_from: socket.socket | None = None

    @property
    def buffered(self) -> bool:
        """Whether bytes of the server's are already read from the control socket and not yet as a reply."""
        return bool(self._received) and self._received_from is self.sock

    def getline(self) -> str:
        """The next line of the control connection, without its line end: what ftplib's `getline` returns.

        Read from a byte buffer of the client's own that `recv` fills, instead of ftplib's text file
        over the socket (a decoder and a socket reader of Python's per call): the same lines, the
        same errors (`ftplib.Error` for a line over `maxline`, `EOFError` at the end, the socket's
        own on a timeout). As in that file, a lone CR ends a line too, and the buffer belongs to the
        socket it was read from: a socket replaced (the TLS one after AUTH, a new connection) starts empty.
        A line that is not valid in `encoding` raises `UnicodeDecodeError` as that file does, though for
        that line alone (the file decodes what it received at once, so the lines before it raise too).
        """
        sock, received = self.sock, self._received
        if self._received_from is not sock:
            self._received_from = sock
            received.clear()
        while True:
            end = received.find(b"\n")
            cr = received.find(b"\r", 0, end) if end >= 0 else received.find(b"\r")
            if cr >= 0 and (cr != end - 1 or end < 0) and cr < len(received) - 1:
                end, skip = cr, cr + 1  # a lone CR (universal newlines, as ftplib's text file reads them)
                break
            if end >= 0:
                skip = end + 1
                if cr >= 0:
                    end = cr  # CRLF
                break
            if len(received) > self.maxline:
                self._check_length(len(received), len(received))
            chunk = sock.recv(_RECEIVE)
            if not chunk:  # the end of the connection: what is left is the last line
                if not received:
                    raise EOFError
                end = skip = len(received)
                if received[-1:] == b"\r":
                    end -= 1
                break
            received += chunk
        if end >= self.maxline:
            self._check_length(end, skip)
        try:
            line = received[:end].decode(self.encoding)
        finally:
            del received[:skip]
        return line

    def _check_length(self, end: int, skip: int) -> None:
        """ftplib's limit: a line of more than `maxline` characters (its line end counted) is an `ftplib.Error`.

        The line's first `maxline` + 1 characters are taken, as ftplib's `readline(maxline + 1)` takes them.
        """
        received, maxline, encoding = self._received, self.maxline, self.encoding
        text = received[:end].decode(encoding, "ignore")
        if len(text) + (skip > end) <= maxline:
            return
        del received[: len(text[: maxline + 1].encode(encoding)) if len(text) > maxline else skip]
        raise ftplib.Error(f"got more than {maxline} bytes")

    def getmultiline(self) -> str:
        """The next reply, once the replies left for later (`deferred_replies`) were read (a refusal among them
        is logged: what it closed was already checked)."""
        while self.deferred_replies:
            self.deferred_replies -= 1
            reply = self._reply()
            if reply[:1] != "2":
                log.debug("a reply left for later was not a success: %s", reply)
        return self._reply()

    def _reply(self) -> str:
        """One reply, its lines joined by "\\n" (ftplib's `getmultiline`)."""
        line = self.getline()
        if line[3:4] == "-":
            code, lines = line[:3], [line]
            while True:
                line = self.getline()
                lines.append(line)
                if line[:3] == code and line[3:4] != "-":
                    break
            return "\n".join(lines)
        return line

    def connect(
        self, host: str = "", port: int = 0, timeout: float = -999, source_address: tuple[str, int] | None = None
    ) -> str:
        if not self.implicit:
            return super().connect(host, port, timeout, source_address)
        self.host, self.port = host, port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((host, port), self.timeout)
        try:
            self.sock = self.context.wrap_socket(raw, server_hostname=host)
        except BaseException:
            raw.close()
            raise
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def makepasv(self) -> tuple[str, int]:
        if self.passive_ahead is not None:
            address, self.passive_ahead = self.passive_ahead, None
            return address
        peer = self.peer()
        if self.features.epsv:
            try:
                return ftplib.parse229(self.sendcmd("EPSV"), peer)
            except ftplib.error_perm as error:
                if reply_code(error) not in EPSV_REFUSED:
                    raise
                self.features.epsv_refused(str(error))
        announced, port = ftplib.parse227(self.sendcmd("PASV"))
        if announced != peer[0]:
            log.debug("PASV announced %s; connecting to the control peer %s instead", announced, peer[0])
        return peer[0], port

    def peer(self) -> tuple[str, int]:
        """The control connection's peer address, asked of the kernel once per connection (every transfer uses it)."""
        sock = self.sock
        if self._peer is None or self._peer[0] is not sock:
            self._peer = (sock, sock.getpeername())
        return self._peer[1]

    @property
    def passive_command(self) -> str:
        """The command that opens a passive data port on this server: EPSV, or PASV once EPSV was refused."""
        return self.features.passive_command

    def take_passive_reply(self, reply: str) -> bool:
        """Keep the address of a pipelined EPSV/PASV reply for the next transfer; False if there is none."""
        try:
            address = passive_address(reply, self.peer())
        except ftplib.Error:
            return False
        if address is None:
            if self.features.epsv and reply_code(reply) in EPSV_REFUSED:
                self.features.epsv_refused(reply)
            return False
        self.passive_ahead = address
        return True

    def can_overlap(self, rest: int | str | None = None) -> bool:
        """Whether a transfer (with this REST offset) goes out in one flight with its data connection."""
        return self.pipelining and rest is None and self.passiveserver

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        if self.can_overlap(rest):
            conn, size = self._overlapped_transfer(cmd)[0], None
        else:
            conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        return self._secure_data(conn), size

    def transfer_after(self, ahead: list[str], cmd: str) -> tuple[socket.socket, list[str]]:
        """Send `ahead` and the transfer command `cmd` in one write (needs `can_overlap()`); returns the
        data connection and the replies to `ahead`, raw and in order, read before the transfer's."""
        conn, replies = self._overlapped_transfer(cmd, ahead)
        return self._secure_data(conn), replies

    def _secure_data(self, conn: socket.socket) -> socket.socket:
        """The data connection wrapped in TLS (resuming the control connection's session) under PROT P."""
        if self._prot_p:
            control = self.sock
            session = control.session if isinstance(control, ssl.SSLSocket) else None
            try:
                conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
            except BaseException:
                conn.close()
                raise
            self.last_data_session_reused = conn.session_reused
        return conn

    def _overlapped_transfer(self, cmd: str, ahead: list[str] | None = None) -> tuple[socket.socket, list[str]]:
        """Send the transfer command, then open the data connection while the server answers (one round trip)."""
        conn = self.start_transfer(cmd, ahead)
        try:
            replies = self.read_opening(len(ahead or ()))
        except BaseException:
            conn.close()
            raise
        return conn, replies

    def can_send_early(self, rest: int | str | None = None) -> bool:
        """Whether a transfer's data may go out before the server's 150: overlapped, and plain (no PROT P).

        Under PROT P the data connection's TLS handshake needs the server's side, which servers do
        only once they accepted the transfer (vsftpd, ProFTPD and pyftpdlib send the 150 first): a
        refused STOR leaves the handshake waiting until the timeout (tried against vsftpd with a
        denied name: 550, and the handshake timed out after `timeout`), and waiting for the 150
        there costs no round trip more than the handshake does anyway.
        """
        return self.can_overlap(rest) and not self._prot_p

    def start_transfer(self, cmd: str, ahead: list[str] | None = None) -> socket.socket:
        """Send `ahead` and `cmd` in one write and open the (plain) data connection; no reply is read yet."""
        host, port = self.makepasv()
        lines = [*ahead, cmd] if ahead else [cmd]
        self.send_lines(lines)
        try:
            return self._data_connection(host, port)
        except OSError:
            # A server that refused the transfer may have closed its port before we reached it
            # (ProFTPD does): raise the refusal, read in step; after a 1xx the connection is lost.
            self.read_opening(len(lines) - 1)
            raise

    def _data_connection(self, host: str, port: int) -> socket.socket:
        """A connection to the passive port: straight to the control peer's address (a number of the control
        connection's family: no name lookup per file), else as `socket.create_connection` makes it."""
        if self.source_address is not None or host != self.peer()[0]:
            return socket.create_connection((host, port), self.timeout, source_address=self.source_address)
        conn = socket.socket(self.af, socket.SOCK_STREAM)  # the control socket's family (`sock.family` makes an enum)
        try:
            conn.settimeout(self.timeout)
            conn.connect((host, port))
        except BaseException:
            conn.close()
            raise
        return conn

    def read_opening(self, ahead: int) -> list[str]:
        """The raw replies to `start_transfer`'s `ahead` commands, then the transfer's 1xx (raised if refused)."""
        replies = [self.getmultiline() for _ in range(ahead)]
        resp = self.getresp()
        if resp[0] == "2":  # some servers send a 200 before the 150
            resp = self.getresp()
        if resp[0] != "1":
            raise ftplib.error_reply(resp)
        return replies

    def batch(self, lines: list[str]) -> list[str]:
        """Send `lines` in one write and return their replies, raw and in order (never raises on a reply)."""
        self.send_lines(lines)
        return [self.getmultiline() for _ in lines]

    def send_lines(self, lines: list[str]) -> None:
        """Send `lines` as commands in one write; `ValueError` (as ftplib's `putline`) if one holds a line break."""
        if not lines:
            return
        data = "\r\n".join(lines) + "\r\n"
        if data.count("\n") != len(lines) or data.count("\r") != len(lines):  # one of each per line end, no more
            raise ValueError("an illegal newline character should not be contained")
        self.sock.sendall(data.encode(self.encoding))


def make_context(params: FtpParams) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=params.ca_file or None)
    if not params.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
