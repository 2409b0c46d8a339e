"""Where the fresh file's time goes on the tbf link: the kernel's queues and the server's copy, sampled.

`python -m tests.benchmarks.link --trace FILE` starts a `LinkTrace` just before the fresh recording
is written and stops it once its final name is there. Every `INTERVAL` seconds it notes, from the
outside: each of the uploader's TCP connections to the server (`ss -tmni`: bytes in the socket's
write queue not yet sent, sent but not acknowledged, the send buffer's size, cwnd, rtt), the tbf
queue (`tc -s qdisc`), and how many bytes the fresh file's `.part` (then final name) holds on the
server. The summary splits close -> final name into: until the `.part` exists (debounce, queue,
STOR and the data connection), its bytes on the link, and from the last byte to the final name
(the 226, rename and check).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

INTERVAL = 0.01
#: any state: a sender that handed its last bytes over has closed its socket (FIN-WAIT-1) with them unsent
_SOCKET = re.compile(r"^[A-Z][A-Z0-9-]+\s+\d+\s+(\d+)\s+\S+:(\d+)\s+\S+:(\d+)")
_FIELD = {
    "notsent": re.compile(r"\bnotsent:(\d+)"),
    "cwnd": re.compile(r"\bcwnd:(\d+)"),
    "mss": re.compile(r"\bmss:(\d+)"),
    "rtt": re.compile(r"\brtt:([\d.]+)"),
    "sndbuf": re.compile(r"\btb(\d+)"),
    "qdisc": re.compile(r"skmem:\(r\d+,rb\d+,t(\d+)"),
    "lowat": re.compile(r"\bnotsent_lowat:(\d+)"),
}
_BACKLOG = re.compile(r"backlog (\d+)b")


@dataclass(slots=True)
class Sample:
    t: float
    part_bytes: int
    final: bool
    tbf_bytes: int
    sockets: dict[int, dict[str, float]]


def sockets(namespace_peer: str) -> dict[int, dict[str, float]]:
    """The uploader's connections to `namespace_peer`, by local port: Send-Q, notsent, cwnd, rtt, sndbuf."""
    out = subprocess.run(
        ["ss", "-tmniH", "dst", namespace_peer], capture_output=True, text=True, check=False
    ).stdout.splitlines()
    found: dict[int, dict[str, float]] = {}
    port = None
    for line in out:
        head = _SOCKET.match(line.strip())
        if head:
            port = int(head.group(2))
            found[port] = {"sendq": float(head.group(1)), "peer_port": float(head.group(3))}
            continue
        if port is None:
            continue
        for name, pattern in _FIELD.items():
            match = pattern.search(line)
            if match:
                found[port][name] = float(match.group(1))
    for info in found.values():
        info.setdefault("notsent", 0.0)
        info["unacked"] = info["sendq"] - info["notsent"]
    return found


def tbf_backlog(device: str) -> int:
    out = subprocess.run(["tc", "-s", "qdisc", "show", "dev", device], capture_output=True, text=True, check=False)
    match = _BACKLOG.search(out.stdout)
    return int(match.group(1)) if match else -1


@dataclass
class LinkTrace:
    """Samples the queues (see the module docstring) from `start` until `stop`."""

    peer: str
    device: str
    part: Path
    final: Path
    samples: list[Sample] = field(default_factory=list)
    closed: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self.closed = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def mark_closed(self, closed: float) -> None:
        """The time (monotonic) the fresh file was closed: the origin of the timeline."""
        self.closed = closed

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            final = self.final.exists()
            try:
                size = (self.final if final else self.part).stat().st_size
            except FileNotFoundError:
                size = -1
            self.samples.append(Sample(now, size, final, tbf_backlog(self.device), sockets(self.peer)))
            self._stop.wait(INTERVAL)

    def summary(self, size: int) -> str:
        """The phases of close -> final name, and what the backlog held in the kernel at the close."""
        rel = [(s.t - self.closed, s) for s in self.samples]
        part_at = next((t for t, s in rel if s.part_bytes >= 0), float("nan"))
        full_at = next((t for t, s in rel if s.part_bytes >= size), float("nan"))
        final_at = next((t for t, s in rel if s.final), float("nan"))
        at_close = min(rel, key=lambda ts: abs(ts[0]))[1] if rel else None
        lines = [
            f"part exists {part_at:.3f} s; all bytes {full_at:.3f} s; final name {final_at:.3f} s "
            f"(bytes on the link {full_at - part_at:.3f} s, last byte -> final {final_at - full_at:.3f} s)"
        ]
        if at_close is not None:
            notsent = sum(i.get("notsent", 0) for i in at_close.sockets.values())
            unacked = sum(i.get("unacked", 0) for i in at_close.sockets.values())
            lines.append(
                f"at the close: unsent in socket buffers {notsent / 1e3:.0f} kB, sent unacked {unacked / 1e3:.0f} kB, "
                f"tbf queue {at_close.tbf_bytes / 1e3:.0f} kB"
            )
        return "\n".join(lines)

    def write(self, path: Path, size: int, title: str) -> None:
        with path.open("a") as out:
            out.write(f"== {title}\n{self.summary(size)}\n")
            for sample in self.samples:
                socks = " ".join(
                    f"[{port}->{int(i['peer_port'])} ns={i.get('notsent', 0) / 1e3:.0f}k "
                    f"ua={i.get('unacked', 0) / 1e3:.0f}k sb={i.get('sndbuf', 0) / 1e3:.0f}k "
                    f"q={i.get('qdisc', 0) / 1e3:.0f}k cw={i.get('cwnd', 0):.0f} rtt={i.get('rtt', 0):.1f}"
                    f"{' lw=' + str(int(i['lowat'])) if 'lowat' in i else ''}]"
                    for port, i in sorted(sample.sockets.items())
                    if i.get("sendq", 0) > 0 or i.get("peer_port") != 2121
                )
                out.write(
                    f"{sample.t - self.closed:7.3f} part={sample.part_bytes:>8} {'F' if sample.final else ' '} "
                    f"tbf={sample.tbf_bytes / 1e3:.0f}k {socks}\n"
                )
            out.write("\n")
