"""`check` for the SFTP and S3 sinks: the path a file takes, a line per step, through the real transport.

SFTP: settings, resolve, connect (the TCP connection, the host key against known_hosts, the login
and the SFTP channel: the failing one is named), write (a probe under a temporary name, fsync,
rename), verify (its size), remove. S3: settings, resolve, connect (credentials and bucket),
write (a PUT with its SHA-256), verify (size and checksum), remove. The first failure ends the
check with exit code 1 and says what to change; no secret is printed.
"""

from __future__ import annotations

import os
import posixpath
import secrets
import socket
import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pipeline.app.options import UploaderOptions
from pipeline.cli import exit_codes
from pipeline.sink.transports import make_transport
from pipeline.transport import Delivery, DeliveryProgress
from pipeline.transport.errors import SessionFailure, TransportFailure, scrub

PROBE = b"beemon-uploader check probe\n"


def run_remote_check(options: UploaderOptions, out: Callable[[str], None] = print) -> int:
    """Exit 0 when every step passed, 1 at the first that failed."""
    target = options.target
    kind = options.kind
    where = target.remote_root if kind == "sftp" else f"s3://{target.bucket}{target.remote_root}"  # type: ignore[union-attr]
    out(f"settings: ok (sink {kind}, station {options.station}, outbox {options.outbox}, remote root {where})")
    try:
        addresses = sorted({i[4][0] for i in socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)})
    except socket.gaierror as error:
        out(f"resolve: failed: {target.host} does not resolve ({error.strerror}); {target.reach_check}")
        return exit_codes.FAILURES_REMAIN
    out(f"resolve: ok ({target.host} -> {', '.join(addresses)})")
    # No clean-up of the station's incomplete uploads from `check`: a running service may own them.
    transport: Any = make_transport(replace(target, station="") if kind == "s3" else target)  # type: ignore[type-var]
    try:
        welcome = transport.connect()
    except TransportFailure as failure:
        out(_connect_failed(failure, options))
        return exit_codes.FAILURES_REMAIN
    try:
        out(f"connect: ok ({target.host}:{target.port}: {welcome})")
        if kind == "sftp":
            out(f"host key: ok (in {target.known_hosts_file})")  # type: ignore[union-attr]
            out(f"login: ok (as {target.username})")
        else:
            out(f"credentials: ok (key {target.username}, bucket {target.bucket} answers)")  # type: ignore[union-attr]
        return _write_and_remove(transport, options, out)
    finally:
        transport.close()


def _connect_failed(failure: TransportFailure, options: UploaderOptions) -> str:
    target = options.target
    text = scrub(str(failure.reply), target.password)
    if options.kind == "sftp" and failure.command == "HOSTKEY":
        return f"connect: ok\nhost key: failed: {text}"
    if options.kind == "sftp" and isinstance(failure, SessionFailure):
        return f"connect: ok\nhost key: ok\nlogin: failed: {text}; {target.login_check}"
    if isinstance(failure, SessionFailure):
        return f"connect: ok\ncredentials: failed: {text}; {target.login_check}"
    return f"connect: failed: {text}; {target.reach_check}"


def _write_and_remove(transport: Any, options: UploaderOptions, out: Callable[[str], None]) -> int:
    target = options.target
    remote = posixpath.join(target.remote_root, f"beemon-check-{secrets.token_hex(4)}.txt")
    with tempfile.NamedTemporaryFile(prefix="beemon-check-", delete=False) as probe:
        probe.write(PROBE)
    try:
        report = transport.deliver(
            Delivery(probe.name, remote, len(PROBE), atomic_rename=options.policy.atomic_rename, verify_size=True),
            DeliveryProgress(),
        )
    except TransportFailure as failure:
        text = scrub(str(failure), target.password)
        out(f"write: failed: {text}; check the account's permissions under {target.remote_root}")
        return exit_codes.FAILURES_REMAIN
    finally:
        os.unlink(probe.name)
    out(f"write: ok ({remote}, {len(PROBE)} B, {report.reply})")
    checked = "size and SHA-256 checked" if options.kind == "s3" else "size checked (SFTP has no hash)"
    out(f"verify: ok ({checked})")
    try:
        transport.remove(remote)
    except TransportFailure as failure:
        out(f"remove: failed: {scrub(str(failure), target.password)}; remove {remote} by hand")
        return exit_codes.FAILURES_REMAIN
    out("remove: ok")
    return exit_codes.OK
