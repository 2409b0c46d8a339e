"""`check`: walk the path a file takes (settings, DNS, connect, TLS, login, write, remove), a line per step.

Each line is `<step>: ok ...` or `<step>: failed: <reason>`; the first failure ends the check with
exit code 1, so the last line names what to fix.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace

from pipeline.app.options import UploaderOptions
from pipeline.cli import exit_codes
from pipeline.ftp.errors import FtpFailure
from pipeline.ftp.session import UploadSession


def _connect_reason(failure: FtpFailure, host: str, port: int) -> str:
    text = failure.reply
    if "refused" in text.lower():
        return f"connection refused by {host}:{port} (is the server running, and is the port right?)"
    if "timed out" in text.lower():
        return f"timed out connecting to {host}:{port} (firewall, or wrong host?)"
    return text


def run_check(options: UploaderOptions, out: Callable[[str], None] = print) -> int:
    """Exit 0 when every step passed, 1 at the first that failed."""
    if options.kind != "ftp":
        from pipeline.cli.check_remote import run_remote_check

        return run_remote_check(options, out)
    out(f"settings: ok (station {options.station}, outbox {options.outbox}, remote root {options.ftp.remote_root})")
    if options.embedded:
        from pipeline.dev.embedded_server import start_embedded_server

        ftp = options.ftp
        server = start_embedded_server(options.embedded_root, ftp.username, ftp.password, ftp.port)
        try:
            local = options.replace(ftp=replace(options.ftp, host="127.0.0.1", port=server.port))
            out(f"embedded: ok (server on 127.0.0.1:{server.port})")
            return _check_server(local, out)
        finally:
            server.stop()
    return _check_server(options, out)


def _check_server(options: UploaderOptions, out: Callable[[str], None]) -> int:
    ftp = options.ftp
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(ftp.host, ftp.port, type=socket.SOCK_STREAM)})
    except socket.gaierror as error:
        out(f"resolve: failed: {ftp.host} does not resolve ({error.strerror}); check ftp.host and the DNS")
        return exit_codes.FAILURES_REMAIN
    out(f"resolve: ok ({ftp.host} -> {', '.join(addresses)})")

    session = UploadSession(ftp, use_sendfile=options.policy.use_sendfile)
    try:
        welcome = session.connect()
    except FtpFailure as failure:
        step = _failed_step(failure, ftp.tls)
        for done in _steps_before(step, ftp.tls):
            out(f"{done}: ok")
        reason = _connect_reason(failure, ftp.host, ftp.port) if step == "connect" else failure.reply
        out(f"{step}: failed: {reason}")
        return exit_codes.FAILURES_REMAIN
    with session:
        out(f"connect: ok ({ftp.host}:{ftp.port}: {welcome.splitlines()[0] if welcome else 'connected'})")
        if ftp.tls != "none":
            out(f"tls: ok ({ftp.tls}, certificate {'verified' if ftp.verify else 'NOT verified (ftp.verify = false)'})")
        out(f"login: ok (as {ftp.username})")
        probe_remote = posixpath.join(ftp.remote_root, f"beemon-check-{secrets.token_hex(4)}.txt")
        content = b"beemon-uploader check probe\n"
        with tempfile.NamedTemporaryFile(prefix="beemon-check-", delete=False) as probe:
            probe.write(content)
        try:
            report = session.upload(
                probe.name,
                probe_remote,
                len(content),
                atomic_rename=options.policy.atomic_rename,
                verify_size=options.policy.verify_size,
            )
        except FtpFailure as failure:
            out(f"write: failed: {failure}; check the account's permissions under {ftp.remote_root}")
            return exit_codes.FAILURES_REMAIN
        finally:
            os.unlink(probe.name)
        checked = {True: "size verified", False: "SIZE MISMATCH", None: "size not checked"}[report.verified]
        out(f"write: ok ({probe_remote}, {len(content)} B, {checked})")
        try:
            session.delete(probe_remote)
        except FtpFailure as failure:
            out(f"remove: failed: {failure}; remove {probe_remote} by hand")
            return exit_codes.FAILURES_REMAIN
        out("remove: ok")
    return exit_codes.OK if report.verified is not False else exit_codes.FAILURES_REMAIN


def _failed_step(failure: FtpFailure, tls: str) -> str:
    if "TLS" in failure.reply or "SSL" in failure.reply.upper() or failure.command in ("AUTH", "PBSZ", "PROT"):
        return "tls"
    if failure.command in ("USER", "PASS"):
        return "login"
    return "connect"


def _steps_before(step: str, tls: str) -> list[str]:
    order = ["connect", *(["tls"] if tls != "none" else []), "login"]
    return order[: order.index(step)]
