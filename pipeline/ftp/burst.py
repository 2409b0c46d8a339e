"""Runs of small files over FTP sessions driven by one thread (issue 17's lean path): `Flow`, one session's run.

`Upload.run` (pipeline.ftp.delivery) handles every case a delivery can meet, one session per thread;
four sessions in four threads hand the GIL to each other at every system call, and most of a small
file's time went to that and to the objects each delivery builds. For the common case (a whole small
file into a folder the session has already made, on a plain FTP server with SIZE and pipelining, the
size check on) a `Flow` sends the very same commands in the very same order, and never blocks but
in sending a flight of commands: the sink's loop (`pipeline.sink.burst_loop`) drives every lent
session's flow from one thread with a selector. Per file:

1. SIZE of the final name (the overwrite guard) and STOR of the temporary name in one flight, on the
   data port asked ahead; the data connection opened without waiting, the bytes sent as soon as it is
   up (`pipeline.ftp.early`: at most `BURST_MAX` bytes, so they fit the fresh connection's windows);
2. the guard's answer, the 150 and the 226 read; the local file's size checked again (a file that
   changed is not renamed);
3. RNFR, RNTO, SIZE of the final name, and the next file's EPSV when one follows, in one flight;
   each reply checked, the server's size compared with the bytes sent.

Any other answer ends the run at that file (`BurstStopped`), with the connection in step or dropped.
What the full delivery path meets with rules of its own is handed back untried (`untake`), and that
path then does the file from the start: a STOR refused with 550 (its folder may have gone: made
again), a guard that refuses or cannot tell (the `.part` removed after it), a refused rename (the old
target deleted, the rename tried again), a refused EPSV (PASV then), a local file gone or changed
before it was sent. Any other failure is handed back as the failure it is, with the file's
`DeliveryProgress`, as the full path reports it (a STOR refused for want of space is retried with
backoff and said once). Nothing here deletes or records anything locally: the caller does that, only
for the files reported verified.
"""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipeline.ftp.early import EARLY_SEND_MAX
from pipeline.ftp.errors import ConnectionLost, FtpFailure, LocalFileChanged, TransientFailure, classify
from pipeline.ftp.replies import reply_error
from pipeline.transport.bandwidth import LiveFirst
from pipeline.transport.base import Delivered
from pipeline.transport.naming import temp_name
from pipeline.transport.runs import BurstFile, BurstStopped

if TYPE_CHECKING:
    from pipeline.ftp.client import FtpClient
    from pipeline.ftp.transport import FtpTransport

#: the largest file that goes the lean way (bytes): what `pipeline.ftp.early` sends before the 150
BURST_MAX = EARLY_SEND_MAX
#: the longest reply line read (as ftplib's `maxline`)
_MAXLINE = 8192


class Flow:
    """One session's run of small files (see the module docstring); its owner calls `start` once, then
    `readable` / `writable` when the selector says so and `expired` when `deadline` passes.

    `following()` is asked before each rename's flight: (whether a data port is wanted for an upload that
    follows, and the next file of this run, or None). `verified` gets each file's report once its copy is
    checked; the run is over when `done` (no next file) or when a call raised `BurstStopped`.
    """

    def __init__(
        self,
        ftp: FtpTransport,
        first: BurstFile,
        following: Callable[[], tuple[bool, BurstFile | None]],
        verified: Callable[[BurstFile, Delivered], None],
    ) -> None:
        self.ftp = ftp
        self.client: FtpClient = ftp.connection.require()
        self.control: socket.socket = self.client.sock
        self._fd = self.control.fileno()
        self._family = self.control.family  # (a property that makes an enum: asked once, not per file)
        self.following = following
        self.verified = verified
        self.checksum = ftp.parts.sender.checksum
        self.timeout = ftp.params.timeout
        self.deadline = time.monotonic() + self.timeout
        #: the data connection while it opens or sends (the loop waits for it to be writable), else None
        self.data: socket.socket | None = None
        self.done = False
        self.file = first
        self._step = ""
        self._replies: list[str] = []
        self._multi: list[str] = []
        self._outgoing = memoryview(b"")
        self._local: int | None = None  # the open local file's descriptor, from its read to its size check
        self._opened = 0
        self._digest: str | None = None
        self._target = self._staging = ""
        self._started = 0.0
        self._next: BurstFile | None = None
        self._port = False
        self._live: LiveFirst | None = None  # the gate of the live file being sent, until its 226
        self._refusal: OSError | None = None
        if self.client._received_from is not self.control:  # the client's reply buffer, shared with it
            self.client._received_from = self.control
            self.client._received.clear()

    # --- the loop's calls

    def start(self) -> None:
        self._begin(self.file)

    def readable(self) -> None:
        """The control connection has bytes: read them, and act on each complete reply."""
        try:  # (`os.read`: the socket's own recv polls first, under its timeout; the loop has polled already)
            chunk = os.read(self._fd, _MAXLINE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as error:
            self._lost(error)
        if not chunk:
            self._lost(EOFError("the server closed the control connection"))
        self.client._received += chunk
        for reply in self._complete_replies():
            self._replies.append(reply)
            self._answered()

    def writable(self, *, opening: bool = False) -> None:
        """The data connection is up (or failed), or takes more bytes; `opening`: tried right after the connect
        (a failed connection then says so at the send)."""
        data = self.data
        assert data is not None
        try:
            failed = 0 if opening else data.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if failed:  # the connection could not be opened
                raise OSError(failed, os.strerror(failed))
            if not self._outgoing and not _connected(data):  # an empty file: closed only once connected
                return
            while self._outgoing:
                try:
                    sent = data.send(self._outgoing)
                except (BlockingIOError, InterruptedError):
                    return
                self._outgoing = self._outgoing[sent:]
        except OSError as error:
            self._close_data()
            # the server may have refused the STOR and closed its port: the refusal, read in step, says
            self._step = "refused"
            self._refusal = error
            return
        self._close_data()
        self._step = "stored"
        self.deadline = time.monotonic() + self.timeout

    def expired(self) -> None:
        """No answer within the session's timeout."""
        self._lost(TimeoutError(f"no answer within {self.timeout:g} s"))

    def close_data(self) -> None:
        """The run is over (or cut): close what this flow still holds open."""
        self._close_data()
        self._close_local()
        self._live_ended()

    # --- the steps

    def _begin(self, file: BurstFile) -> None:
        """Read the next file, then ask its data port (unless asked ahead) or store it."""
        self.file, self._started = file, time.monotonic()
        absolute = self.ftp.connection.absolute
        self._target = absolute(file.remote_path)
        self._staging = temp_name(self._target)
        try:
            fd = os.open(file.local_path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BurstStopped(file, FileNotFoundError(file.local_path), untake=True) from None
        except OSError as error:
            raise BurstStopped(file, error, untake=True) from None
        self._local = fd
        try:  # (one byte more than its size: a file that grew says so here, with no `fstat` of its own)
            data = os.read(fd, file.size + 1)
        except OSError as error:
            self._close_local()
            raise BurstStopped(file, error, untake=True) from None
        if len(data) != file.size:
            self._close_local()
            raise BurstStopped(file, LocalFileChanged(f"{file.local_path} changed before it was sent"), untake=True)
        self._opened = file.size  # what was read: all of it, up to its end
        self._digest = hashlib.sha256(data).hexdigest() if self.checksum else None
        self._outgoing = memoryview(data)
        if file.live is not None:  # backlog transfers pause until its bytes are in (as `Sink` does for any live file)
            file.live.live_started()
            self._live = file.live
        if self.client.passive_ahead is None:
            self._send([self.client.passive_command], "port")
        else:
            self._store()

    def _store(self) -> None:
        """SIZE + STOR in one flight, then the data connection opened without waiting for it."""
        host, port = self.client.makepasv()  # the address asked ahead (no round trip)
        self._send([f"SIZE {self._target}", f"STOR {self._staging}"], "storing")
        data = socket.socket(self._family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        self.client.data_socket = data  # `abort` cuts it
        self.data = data
        failed = data.connect_ex((host, port))
        if failed not in (0, errno.EINPROGRESS, errno.EAGAIN):
            self._close_data()
            self._step = "refused"
            self._refusal = OSError(failed, os.strerror(failed))
            return
        # Sent at once if the connection is up already (a near server): a send on one still opening says
        # EAGAIN, and the loop waits for it to be writable; one that failed says so at that send.
        self._step = "sending"
        self.writable(opening=True)

    def _answered(self) -> None:
        """One more reply to the flight in the air: act once it says enough."""
        step, replies = self._step, self._replies
        if step == "port":
            self._replies = []
            if not self.client.take_passive_reply(replies[0]):
                self._stop_untaken(classify(reply_error(replies[0]), command="EPSV"))
            self._store()
        elif step in ("sending", "stored", "refused"):
            self._stored(replies)
        elif step == "renaming":
            self._renamed(replies)
        else:
            self._lost(ConnectionLost(f"an unexpected reply: {replies[-1]}"))

    def _stored(self, replies: list[str]) -> None:
        """The guard's answer, then the 150 and the 226 (a refusal may come instead of either)."""
        file = self.file
        if len(replies) == 1:
            return
        if len(replies) == 2:
            opening = replies[1]
            if opening[:1] == "2" and opening[:3] != "226":  # some servers send a 200 before the 150
                replies.pop()
                return
            if opening[:1] != "1":  # the STOR refused: nothing was stored, the connection in step
                self._close_data()
                refusal = classify(reply_error(opening), command="STOR")
                if opening[:3] == "550":  # perhaps its folder went: the full path makes it again and stores
                    self._stop_untaken(refusal)
                self._stop_reported(refusal)  # reported and retried (or parked) as the full path does
            file.progress.stored = True
            if self._step == "refused":  # accepted, but the data connection failed: the transfer is lost
                self._lost(ConnectionLost(f"the data connection failed: {self._refusal}"))
            return
        if self.data is not None or self._step == "refused":  # the 226 before our bytes went: not ours
            self._close_data()
            self._lost(ConnectionLost("the transfer ended before its data was sent"))
        self._replies = []
        self._live_ended()
        probed, _, ended = replies
        if ended[:3] != "226" and ended[:3] != "250":
            self._stop_reported(classify(reply_error(ended), command="STOR"))
        file.progress.complete = True
        if probed[:3] == "213":
            if not file.may_replace(_size(probed)):  # a copy to protect: the full path asks and says so
                self._stop_untaken(TransientFailure("the overwrite guard is asked again", command="SIZE"))
        elif probed[:3] != "550":  # not a clear "no such file": the full path asks again
            self._stop_untaken(TransientFailure(f"the guard's SIZE answered {probed}", command="SIZE"))
        try:
            now = os.fstat(self._local).st_size if self._local is not None else -1
        finally:
            self._close_local()
        if now != self._opened:
            self._stop_reported(
                LocalFileChanged(f"{file.local_path} is {now} bytes now, {self._opened} when its upload began")
            )
        self._port, self._next = self.following()
        lines = [f"RNFR {self._staging}", f"RNTO {self._target}", f"SIZE {self._target}"]
        if self._port:
            lines.append(self.client.passive_command)
        self._send(lines, "renaming")

    def _renamed(self, replies: list[str]) -> None:
        file = self.file
        if len(replies) < 3 + self._port:
            return
        self._replies = []
        rnfr, rnto, size = replies[:3]
        if self._port:
            self.client.take_passive_reply(replies[3])
        if rnfr[:3] != "350" or rnto[:1] != "2":  # refused: the full path renames again, or replaces
            failing = rnfr if rnfr[:3] != "350" else rnto
            self._stop_untaken(classify(reply_error(failing), command="RNTO"))
        file.progress.renamed = True
        if size[:3] != "213":
            missing = f"{self._target} is not on the server after the upload"
            self._stop_reported(TransientFailure(missing, command="SIZE"))
        if _size(size) != file.size:
            remote = _size(size)
            self._stop_reported(
                TransientFailure(f"size mismatch: the server has {remote} bytes, local {file.size}", command="SIZE")
            )
        seconds = time.monotonic() - self._started
        self.verified(file, Delivered(file.size, 0, rnto, True, seconds, self._digest, "size", None))
        following, self._next = self._next, None
        if following is None:
            self.done = True
            return
        self._begin(following)

    # --- helpers

    def _send(self, lines: list[str], step: str) -> None:
        self._step = step
        self.deadline = time.monotonic() + self.timeout
        try:  # (a name the encoding cannot carry is a `UnicodeEncodeError`, a `ValueError`)
            text = "\r\n".join(lines) + "\r\n"
            data = text.encode(self.client.encoding)
            if text.count("\n") != len(lines) or text.count("\r") != len(lines):  # one in a line (a name)
                raise ValueError("an illegal newline character should not be contained")
            try:
                sent = os.write(self._fd, data)  # a flight fits the socket's buffer: written at once, no poll first
            except BlockingIOError:
                sent = 0
            if sent < len(data):
                self.control.sendall(data[sent:])  # (a full buffer: the rest under the socket's timeout)
        except (OSError, ValueError) as error:
            self._lost(error)

    def _complete_replies(self) -> list[str]:
        """The complete replies in the client's buffer, taken out of it (a multi-line reply counts once)."""
        received, out = self.client._received, []
        while (end := received.find(b"\n")) >= 0:
            line = bytes(received[:end]).rstrip(b"\r").decode(self.client.encoding, "replace")
            del received[: end + 1]
            if self._multi:
                self._multi.append(line)
                if line[:3] == self._multi[0][:3] and line[3:4] != "-":
                    out.append("\n".join(self._multi))
                    self._multi = []
            elif line[3:4] == "-":
                self._multi = [line]
            else:
                out.append(line)
        if len(received) > _MAXLINE:
            self._lost(ConnectionLost(f"a reply line of more than {_MAXLINE} bytes"))
        return out

    def _close_data(self) -> None:
        data, self.data = self.data, None
        if data is not None:
            self.client.data_socket = None
            data.close()

    def _live_ended(self) -> None:
        live, self._live = self._live, None
        if live is not None:
            live.live_ended()

    def _close_local(self) -> None:
        fd, self._local = self._local, None
        if fd is not None:
            os.close(fd)

    def _stop_untaken(self, error: BaseException) -> None:
        self.close_data()
        raise BurstStopped(self.file, error, untake=True)

    def _stop_reported(self, error: BaseException) -> None:
        self.close_data()
        raise BurstStopped(self.file, error, untake=False)

    def _lost(self, error: BaseException) -> None:
        """The connection is out of step or gone: dropped; the file's attempt reported lost, unless it had not
        reached the server (then it is tried again from the start, untouched)."""
        self.close_data()
        self.ftp.connection.discard()
        failure = error if isinstance(error, FtpFailure) else ConnectionLost(f"{type(error).__name__}: {error}")
        raise BurstStopped(self.file, failure, untake=not self.file.progress.stored)


def _connected(sock: socket.socket) -> bool:
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def _size(reply: str) -> int:
    """The number of a 213 reply to SIZE (-1 when it is none)."""
    try:
        return int(reply[4:].strip())
    except ValueError:
        return -1
