"""`verify [--date YYYY-MM-DD ...] [--station S]`: the server against its SHA256SUMS (read-only), exit 0 or 1."""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Sequence

from pipeline.app.options import UploaderOptions
from pipeline.app.verify import verify_days
from pipeline.cli import exit_codes
from pipeline.sink.transports import make_transport
from pipeline.transport.errors import TransportFailure


def run_verify(
    options: UploaderOptions,
    dates: Sequence[str] | None,
    station: str | None,
    out: Callable[[str], None] = print,
) -> int:
    """One line per problem, then a summary; 0 when everything holds, 1 otherwise (or when the server fails)."""
    station = station or options.station
    station_dir = posixpath.join(options.target.remote_root, station)
    transport = make_transport(options.target, use_sendfile=False, checksum=True)
    try:
        transport.connect()
        verdict = verify_days(transport, station_dir, dates or None, out)
    except TransportFailure as failure:
        out(f"verify: failed: {failure} (nothing was changed)")
        return exit_codes.FAILURES_REMAIN
    finally:
        transport.close()
    out(verdict.summary(station, transport.check))
    return exit_codes.FAILURES_REMAIN if verdict.problems else exit_codes.OK
