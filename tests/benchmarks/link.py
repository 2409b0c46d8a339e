"""`python -m tests.benchmarks.link`: the uploader on a real rate-limited link (root only).

A network namespace of its own with a veth pair, a `tbf` qdisc at 20 Mbit/s on the uploader's side
(the upload direction; netem is not available here), vsftpd inside the namespace on the pair's
address, `beemon-uploader run` outside. Two figures: the link's utilisation while a backlog of
large files drains (the bytes the tbf itself sent, headers included / time / rate; beside it the
goodput, file bytes delivered / time / rate, which TCP/IP and Ethernet headers cap at 1448/1514 =
95.6 % of the rate), and how long a fresh recording written while 4 backlog transfers are in flight
takes from close to its final name on the server. Only the
addresses of the pair made here are used; the namespace is deleted whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.benchmarks import report
from tests.benchmarks.harness import REMOTE_ROOT, STATION, Uploader, file_name, write_files
from tests.benchmarks.link_trace import LinkTrace
from tests.servers import find_server, vsftpd_settings

RATE_MBIT = 20
RATE_BYTES = RATE_MBIT * 1_000_000 / 8
DEBOUNCE = 0.5
LIVE_BYTES = 500_000
PORT = 2121
#: An mtime well in the past: backlog files are quiet at once.
LONG_AGO = 1_600_000_000


#: The most file bytes a full link carries per byte it sends: 1448 of payload per 1514-byte frame (MSS
#: with TCP timestamps, Ethernet header included; the tbf counts the frame's bytes).
GOODPUT_CEILING = 1448 / 1514


def link_bytes(device: str) -> int:
    """The bytes the qdisc on `device` (the tbf) has sent so far, headers included."""
    shown = subprocess.run(["tc", "-s", "qdisc", "show", "dev", device], capture_output=True, text=True).stdout
    found = re.search(r"Sent (\d+) bytes", shown)
    return int(found.group(1)) if found else 0


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def tbf_link(rate_mbit: int = RATE_MBIT) -> Iterator[tuple[str, str, str]]:
    """A namespace with one end of a veth pair, the other end here with `tbf` on it.

    Yields (namespace, server address, the device here that carries the tbf)."""
    tag = f"{os.getpid() % 100_000}"
    namespace, outside, inside = f"beemon-link-{tag}", f"bml{tag}o", f"bml{tag}i"
    octet = os.getpid() % 250 + 1
    here, there = f"10.231.{octet}.1", f"10.231.{octet}.2"
    _ip("netns", "add", namespace)
    try:
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("addr", "add", f"{here}/30", "dev", outside)
        _ip("link", "set", outside, "up")
        _ip("-n", namespace, "addr", "add", f"{there}/30", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        tbf = ["tbf", "rate", f"{rate_mbit}mbit", "burst", "32kbit", "latency", "400ms"]
        subprocess.run(["tc", "qdisc", "add", "dev", outside, "root", *tbf], check=True)
        yield namespace, there, outside
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", outside)  # takes its peer with it
        _ip("netns", "del", namespace)


@contextlib.contextmanager
def vsftpd_in(namespace: str, address: str, folder: Path) -> Iterator[Path]:
    """vsftpd inside `namespace`, listening on `address`:PORT; yields the root its uploads land under."""
    found = find_server("vsftpd", "vsftpd")
    if found is None:
        raise SystemExit("vsftpd is not installed: run `make servers`")
    root = folder / "root"
    root.mkdir(parents=True)
    settings = {**vsftpd_settings(folder, root), "listen_address": address, "listen_port": str(PORT)}
    conf = folder / "vsftpd.conf"
    conf.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    conf.chmod(0o600)
    process = subprocess.Popen(["ip", "netns", "exec", namespace, str(found[0]), str(conf)], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ["ip", "netns", "exec", namespace, "ss", "-ltn", f"sport = :{PORT}"], capture_output=True, text=True
            )
            if f":{PORT}" in probe.stdout:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("vsftpd did not listen in the namespace")
        yield root
    finally:
        process.terminate()
        process.wait(10)


def _remote(root: Path, name: str, sensor: str, day: str) -> Path:
    return Path(f"{root}{REMOTE_ROOT}") / STATION / day / sensor / name


def run(
    work: Path, backlog: int, backlog_size: int, source: Path | None, trace: Path | None = None
) -> dict[str, float]:
    """One run: the backlog drains; a fresh recording is written once 4 transfers are in flight.

    `trace`: a file to append the fresh file's timeline to (`link_trace.LinkTrace`)."""
    with tbf_link() as (namespace, address, device), vsftpd_in(namespace, address, work / "server") as root:
        outbox = work / "outbox"
        day = "2024-05-01"
        names = [file_name(i, "h264", "backlog", day) for i in range(backlog)]
        write_files(outbox / "video" / day, names, backlog_size, mtime=LONG_AGO)
        uploader = Uploader(work, outbox, PORT, password="bench", debounce=DEBOUNCE)
        uploader.extra_env.update(
            BEEMON_FTP__HOST=address, BEEMON_FTP__USERNAME="anonymous", BEEMON_FTP__REMOTE_ROOT=f"{root}{REMOTE_ROOT}"
        )
        if source is not None:  # another tree's code (the baseline of the same run)
            uploader.extra_env["PYTHONPATH"] = str(source)
        folder = _remote(root, "", "video", day)
        started = time.monotonic()
        uploader.start(wait=False)
        try:
            deadline, sending, link_at_start = started + 60, 0.0, link_bytes(device)
            while time.monotonic() < deadline and len(list(folder.glob(".*.part"))) < 3:
                if not sending and folder.exists() and any(folder.glob(".*.part")):
                    sending = time.monotonic()  # the first byte on the link, about
                    link_at_start = link_bytes(device)
                time.sleep(0.01)
            time.sleep(2.0)  # the transfers well under way
            live_day = "2024-05-02"
            live_name = file_name(0, "wav", "live", live_day)
            live_remote = _remote(root, live_name, "audio", live_day)
            tracer = None
            if trace is not None:
                part = live_remote.with_name(f".{live_name}.part")
                tracer = LinkTrace(address, device, part, live_remote)
                tracer.start()
            written = write_files(outbox / "audio" / live_day, [live_name], LIVE_BYTES)[0]
            closed = time.monotonic()
            while not live_remote.exists() and time.monotonic() < closed + 120:
                time.sleep(0.005)
            latency = time.monotonic() - closed
            if tracer is not None and trace is not None:
                tracer.mark_closed(closed)
                time.sleep(0.1)
                tracer.stop()
                tracer.write(
                    trace,
                    LIVE_BYTES,
                    f"{source or 'this tree'}: close -> final name {latency:.3f} s (closed at {closed:.4f})",
                )
            end = started + 60 + 2 * backlog * backlog_size / RATE_BYTES
            while any(p.exists() for p in [written, *(outbox / "video" / day / n for n in names)]):
                if time.monotonic() > end:
                    raise RuntimeError("the backlog did not drain in time")
                time.sleep(0.02)
            drained = time.monotonic()
            on_link = link_bytes(device) - link_at_start
        finally:
            uploader.stop()
        sent = backlog * backlog_size + LIVE_BYTES
        missing = [n for n in names if _remote(root, n, "video", day).stat().st_size != backlog_size]
        assert not missing, missing
        seconds = drained - (sending or started)
        return {
            "latency": latency,
            "drain_seconds": seconds,
            "utilisation": on_link / seconds / RATE_BYTES,
            "goodput": sent / seconds / RATE_BYTES,
        }


BEGIN = "<!-- bench-link:begin (written by `make bench` as root, tests/benchmarks/link.py; edit outside) -->"
END = "<!-- bench-link:end -->"


def _cell(values: list[float], text, worst) -> str:
    """The worst of the runs; each run's figure after it when there are several."""
    if len(values) == 1:
        return text(values[0])
    return f"{text(worst(values))} (runs: {', '.join(text(v) for v in values)})"


def block(columns: dict[str, list[dict[str, float]]], backlog: int, size_mb: int, started: str, load: str) -> str:
    """The generated part of docs/benchmarks.md: one column per tree (the worst of its runs), the issue's targets."""
    bound = DEBOUNCE + LIVE_BYTES / RATE_BYTES + 1.0
    utilisation = [_cell([r["utilisation"] for r in c], "{:.1%}".format, min) for c in columns.values()]
    goodput = [_cell([r["goodput"] for r in c], "{:.1%}".format, min) for c in columns.values()]
    latency = [_cell([r["latency"] for r in c], "{:.2f} s".format, max) for c in columns.values()]
    first = next(iter(columns.values()))
    rows = [
        [
            "link utilisation (bytes the tbf sent, headers included / time from the first `.part` to the last"
            " local delete / rate)",
            *utilisation,
            ">= 95 %",
            "yes" if min(r["utilisation"] for r in first) >= 0.95 else "**no**",
        ],
        [
            "goodput (file bytes delivered / the same time / rate)",
            *goodput,
            f"none: headers cap it at {GOODPUT_CEILING:.1%} of the rate",
            "n/a",
        ],
        [
            f"fresh {LIVE_BYTES // 1000} kB file written 2 s after 3-4 transfers started, close -> final name",
            *latency,
            f"<= debounce + its size at the rate + 1 s = {bound:.2f} s",
            "yes" if max(r["latency"] for r in first) <= bound else "**no**",
        ],
    ]
    header = [f"{backlog} x {size_mb} MB at {RATE_MBIT} Mbit/s (tbf)", *columns, "target", "met (this tree)"]
    runs = len(first)
    drained = ", ".join(
        f"{name} {' / '.join(format(r['drain_seconds'], '.0f') for r in c)} s" for name, c in columns.items()
    )
    how = "One run per column" if runs == 1 else f"{runs} runs per column, taking turns; each cell the worst run"
    return "\n".join(
        [
            BEGIN,
            "",
            f"Run on {started}: {report.machine()}. Load average (1 min) {load} at the start, "
            f"{report.load_average()} at the end. {how}; the backlog drained in {drained}.",
            "",
            report.table(rows, header),
            "",
            END,
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=40)
    parser.add_argument("--size-mb", type=int, default=8)
    parser.add_argument("--baseline", type=Path, help="a source tree to run as the baseline (e.g. main's)")
    parser.add_argument("--trace", type=Path, help="append the fresh file's timeline to this file (link_trace)")
    parser.add_argument("--runs", type=int, default=1, help="runs per column, taking turns (the figure: the worst)")
    parser.add_argument("--out", default="docs/benchmarks.md", help="where to write the rows ('' for nowhere)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "the link bench needs root (network namespaces): skipped, docs/benchmarks.md keeps its rows",
            file=sys.stderr,
        )
        return 0
    started, load = report.stamp(), report.load_average()
    trees = {"this tree": None}
    if args.baseline is not None:
        trees[f"baseline ({args.baseline})"] = args.baseline
    columns: dict[str, list[dict[str, float]]] = {label: [] for label in trees}
    for index in range(args.runs):
        for label, source in trees.items():
            with tempfile.TemporaryDirectory(prefix="beemon-link-") as folder:
                result = run(Path(folder), args.backlog, args.size_mb * 1_000_000, source, args.trace)
            columns[label].append(result)
            print(f"run {index + 1}, {label}: {result}", file=sys.stderr, flush=True)
    text = block(columns, args.backlog, args.size_mb, started, load)
    print(text)
    if args.out and args.backlog == 40 and args.size_mb == 8:  # the size only
        report.write(Path(args.out), text, BEGIN, END)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
