"""Helpers of the tests/ftp tests: the commands a server saw, an FTPS server (files: tests.helpers.write)."""

from __future__ import annotations

from tests.ftp_faults import Faults, FaultyTLSHandler


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
