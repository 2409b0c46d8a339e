"""Helpers of the tests/ftp tests: a file of random bytes, the commands a server saw, an FTPS server."""

from __future__ import annotations

import os
from pathlib import Path

from tests.ftp_faults import Faults, FaultyTLSHandler


def write(path: Path, size: int) -> bytes:
    data = os.urandom(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def after(journal: list[tuple[str, str]], start: int) -> list[str]:
    return [cmd for cmd, _ in journal[start:]]


def tls_server(make_server, tls_files, handler=FaultyTLSHandler, faults: Faults | None = None):
    return make_server(
        handler,
        faults=faults,
        certfile=tls_files.cert_file,
        tls_control_required=True,
        tls_data_required=True,
        ssl_context=None,
    )
