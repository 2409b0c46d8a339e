"""The login: USER, PASS, PBSZ/PROT (under TLS), TYPE I, one command at a time or in one flight.

Each step is mapped under its own name, with the password masked in what it raises (`LOGIN_STEPS`: a
server may echo the password there). In one flight, USER, PASS, PBSZ/PROT, TYPE I and FEAT are sent
together and their replies read in order. Used when pipelining (`FtpParams.pipelining`): after the
welcome (and AUTH TLS's handshake) a login costs one round trip instead of four or six. Every reply
is read and matched to its command; the first one that refuses decides what is raised, under the
step's name as `Connection` maps it (the password masked), so a refused login ends as it does one
command at a time. A server that logs in on USER alone (230) answers the PASS with a 503, which is
then not a refusal. FEAT's raw reply is returned for `DeliveryCheck.learn`, which would otherwise
ask for it in a round trip of its own. Commands given as `after` (the first delivery's folders,
`FtpTransport.first_folder`) go at the end of the same flight; their raw replies are returned for
the caller to read. Sent before the login's answer, they cost nothing if it is refused: the server
refuses them too (530), and the connection is dropped.
"""

from __future__ import annotations

import ftplib

from pipeline.ftp.client import FtpClient
from pipeline.ftp.errors import FtpFailure, map_exceptions
from pipeline.ftp.params import FtpParams
from pipeline.ftp.replies import reply_error

#: The steps of `Connection.connect`: the password is sent in one of them, so their errors are masked.
LOGIN_STEPS = frozenset({"CONNECT", "AUTH", "USER", "PASS", "PROT", "PBSZ", "TYPE"})


def log_in_step_by_step(client: FtpClient, params: FtpParams) -> None:
    """Log in, protect the data connections (TLS) and TYPE I, one command at a time (no pipelining)."""
    with map_exceptions("USER", secret=params.password):
        client.login(params.username, params.password, secure=False)
    if params.secure:
        with map_exceptions("PROT", secret=params.password):
            client.prot_p()
    with map_exceptions("TYPE", secret=params.password):
        client.voidcmd("TYPE I")


def login_lines(params: FtpParams) -> list[tuple[str, str]]:
    """(step name for the error map, command) of the login flight, in order."""
    password = params.password
    if params.username == "anonymous" and password in ("", "-"):
        password += "anonymous@"  # as ftplib's login does
    lines = [("USER", f"USER {params.username}"), ("USER", f"PASS {password}")]
    if params.secure:
        lines += [("PROT", "PBSZ 0"), ("PROT", "PROT P")]
    return [*lines, ("TYPE", "TYPE I"), ("FEAT", "FEAT")]


def log_in_one_flight(client: FtpClient, params: FtpParams, after: list[str] | None = None) -> tuple[str, list[str]]:
    """Log in, protect the data connections (TLS), TYPE I, and ask FEAT, in one flight with the commands
    `after`; returns FEAT's raw reply and the raw replies to `after`.

    Raises the `FtpFailure` of the first step refused (after reading what the server still answers).
    """
    login = login_lines(params)
    lines = [*login, *(("AFTER", line) for line in after or ())]
    with map_exceptions("USER", secret=params.password):
        if any("\r" in line or "\n" in line for _, line in lines):  # as ftplib's putline refuses it
            raise ValueError("an illegal newline character should not be contained")
        client.sock.sendall("".join(f"{line}\r\n" for _, line in lines).encode(client.encoding))
    replies: list[str] = []
    refusal: tuple[str, ftplib.Error] | None = None
    for step, line in lines:
        try:
            with map_exceptions(step, secret=params.password):
                reply = client.getmultiline()
        except FtpFailure:
            if refusal is None:
                raise
            break  # the server hung up after refusing: the refusal is what counts
        replies.append(reply)
        if step == "AFTER":
            continue
        if refusal is None and _refused(line, reply, replies):
            refusal = (step, reply_error(reply))
    if refusal is not None:
        with map_exceptions(refusal[0], secret=params.password):
            raise refusal[1]
    if params.secure:
        client._prot_p = True  # what ftplib's prot_p records once PROT P is accepted
    return replies[len(login) - 1], replies[len(login) :]


def _refused(line: str, reply: str, replies: list[str]) -> bool:
    """Whether `reply` refuses `line` (FEAT's refusal is not the login's: `DeliveryCheck` reads it)."""
    if line.startswith("USER "):
        return reply[:1] not in ("2", "3")
    if line.startswith("PASS "):
        return not (reply[:1] == "2" or (replies[0][:1] == "2" and reply[:3] == "503"))
    if line == "FEAT":
        return False
    return reply[:1] != "2"
