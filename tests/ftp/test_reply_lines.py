"""FtpClient reads the control connection's replies from a byte buffer of its own: the same lines and errors as
ftplib's text file over the socket, byte for byte, however the server's bytes are cut into segments."""

from __future__ import annotations

import ftplib
import socket
import threading

import pytest

from pipeline.ftp.client import FtpClient
from pipeline.ftp.quiet import still_quiet


def _client(kind: type, sock: socket.socket, maxline: int) -> ftplib.FTP:
    client = kind() if kind is ftplib.FTP else FtpClient(implicit=False, context=None, timeout=5, pipelining=True)
    client.sock, client.file, client.maxline = sock, sock.makefile("r", encoding=client.encoding), maxline
    return client


def _read_all(kind: type, segments: list[bytes], maxline: int, *, replies: bool = False) -> list[tuple[str, str]]:
    """What `getline` (or `getmultiline`) returns or raises, call after call, for `segments` sent one by one."""
    ours, server = socket.socketpair()
    ours.settimeout(5)
    client = _client(kind, ours, maxline)
    seen: list[tuple[str, str]] = []
    try:
        for segment in segments:
            server.sendall(segment)
        server.shutdown(socket.SHUT_WR)
        while len(seen) < 20:
            try:
                seen.append(("line", client.getmultiline() if replies else client.getline()))
            except (EOFError, ftplib.Error) as error:
                seen.append((type(error).__name__, str(error)))
                if isinstance(error, EOFError) or seen[-2:-1] == seen[-1:]:
                    break
    finally:
        ours.close()
        server.close()
    return seen


SEGMENTS = [
    [b"220 Welcome.\r\n"],
    [b"150 Ok to send data.\r\n226 Transfer complete.\r\n350 Ready for RNTO.\r\n"],
    [b"22", b"6 Transfer compl", b"ete.\r", b"\n213 4096\r\n"],  # a reply cut anywhere, even in its CRLF
    [b"250-Listing\r\n size=3; a\r\n250-not the end\r\n250 End\r\n229 Entering (|||5000|)\r\n"],
    [b"220 lf only\n221 bye\r\n"],
    [b"220 a lone\rCR ends a line\r\n"],  # as universal newlines read it
    [b"220 a CR at the end", b"\r", b"\r\n"],
    [b"221 the end without a line end"],
    [b"221 the end after a CR\r"],
    ['257 "/répertoire" created\r\n'.encode()],
    [b"x" * 9 + b"\r\n", b"x" * 10 + b"\r\n", b"ok\r\n"],  # the limit (10 here): its line end counted
    [b"y" * 25 + b"\r\n" + b"ok\r\n"],  # over the limit: the first `maxline + 1` characters are taken
    [b"z" * 12],  # over the limit without a line end yet
    ["é".encode() * 9 + b"\r\n", "é".encode() * 10 + b"\r\n"],  # characters, not bytes, counted
    [],
]


@pytest.mark.parametrize("segments", SEGMENTS)
@pytest.mark.parametrize("maxline", [10, 8192])
def test_lines_and_errors_are_ftplibs(segments, maxline):
    assert _read_all(FtpClient, segments, maxline) == _read_all(ftplib.FTP, segments, maxline)


@pytest.mark.parametrize("segments", SEGMENTS[:5])
def test_multiline_replies_are_ftplibs(segments):
    assert _read_all(FtpClient, segments, 8192, replies=True) == _read_all(ftplib.FTP, segments, 8192, replies=True)


def test_a_timeout_is_the_sockets_own():
    ours, server = socket.socketpair()
    ours.settimeout(0.05)
    client = _client(FtpClient, ours, 8192)
    try:
        server.sendall(b"226 half a li")
        with pytest.raises(TimeoutError):
            client.getline()
    finally:
        ours.close()
        server.close()


def test_a_reply_read_in_with_the_welcome_makes_a_connection_opened_ahead_not_quiet():
    """A server that wrote its 421 right behind the welcome: the bytes are in the client's buffer, not in the
    socket, and the connection opened ahead is not logged in on (`Connection.connect` opens another)."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"220 Welcome.\r\n421 Timeout.\r\n")
        accepted.append(conn)

    thread = threading.Thread(target=serve)
    thread.start()
    client = FtpClient(implicit=False, context=None, timeout=5, pipelining=True)
    try:
        welcome = client.connect("127.0.0.1", listener.getsockname()[1])
        thread.join(5)
        assert welcome == "220 Welcome."
        assert client.buffered
        assert not still_quiet(client)
    finally:
        client.close()
        for conn in accepted:
            conn.close()
        listener.close()
