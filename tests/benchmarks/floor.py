"""The floor: how many 4 KiB files per second CPython can put on the loopback vsftpd at all, on this machine.

Issue 17 asks the uploader for lftp's rate on 2,000 x 4 KiB against a C server. This measures
what the language and the machine allow, with nothing of the uploader around it:

- `bare`: per file STOR of the final name with the bytes sent at once behind it on the data
  connection (as the uploader does for small files), the next file's EPSV sent right behind, then
  the 150, the 226 and the 229 read. No temporary name, no check, the local file stays.
- `guarded`: what the uploader promises per file, and nothing else, in its 6 commands: the local
  file opened and its size taken; SIZE of the final name (the uploader's guard against
  overwriting another file's copy: 550, none there) and STOR to a temporary name (`.name.part`)
  in one flight, the bytes right behind; the local size taken again (a file that changed is not
  renamed); then RNFR, RNTO and SIZE of the final name in one flight with the next file's EPSV,
  each reply checked and the size compared; then the local file deleted. No watcher, no job
  queue, no journal, no logs, no second process.

Each runs with N connections as N threads in one process and as N processes (fork), over raw
sockets (a buffered reader for the replies): the leanest Python client there is. `guarded` also
runs as one thread driving the N connections from a selector, and so again with the file's SHA-256
and its manifest line fsync'ed before the delete (`tests.benchmarks.floor_loop`). Logins happen
before the clock starts, as for the uploader's bench row (its sessions are logged in while idle).
The same run measures `lftp mirror -R --parallel=N` and the uploader itself (`beemon-uploader run`,
files moved into its outbox) on fresh servers of the same kind, and `watchdog` alone: the CPU
its inotify observer spends to deliver the events of N files moved into a watched folder and
deleted (what the uploader's watcher sees per file in the bench row).

Every run checks its outcome: every file on the server under its final name with its exact
bytes, no temporary name left, and (guarded) no local file left.

Run: `python -m tests.benchmarks.floor [--files 2000] [--connections 4] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.benchmarks import baselines, procs
from tests.benchmarks.harness import fresh_dir, leftovers, verify, write_files
from tests.benchmarks.servers import Server, ftp_server

SIZE = 4096
REMOTE = "/floor"


# --- a minimal FTP client on raw sockets


class Control:
    """One logged-in control connection: commands written as bytes, replies read line by line."""

    def __init__(self, server: Server) -> None:
        self.sock = socket.create_connection(("127.0.0.1", server.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")
        self.expect("220")
        self.sock.sendall(f"USER {server.username}\r\n".encode())
        if self.reply().startswith(b"331"):  # (vsftpd's anonymous account answers 230 at once)
            self.flight(f"PASS {server.password}", expect=("230",))
        self.flight("TYPE I", expect=("200",))

    def reply(self) -> bytes:
        """One reply (its last line for a multi-line one)."""
        line = self.reader.readline()
        if line[3:4] == b"-":
            code = line[:3] + b" "
            while not line.startswith(code):
                line = self.reader.readline()
        return line

    def expect(self, code: str) -> bytes:
        line = self.reply()
        if not line.startswith(code.encode()):
            raise RuntimeError(f"expected {code}, got {line!r}")
        return line

    def flight(self, *commands: str, expect: tuple[str, ...]) -> list[bytes]:
        """Send `commands` in one write; read and check one reply per expected code."""
        self.sock.sendall("".join(f"{c}\r\n" for c in commands).encode())
        return [self.expect(code) for code in expect]

    def data_socket(self, epsv_reply: bytes) -> socket.socket:
        port = int(epsv_reply.split(b"|")[-2])
        return socket.create_connection(("127.0.0.1", port))

    def store(self, path: str, data: bytes, epsv_reply: bytes, *, then: str = "", guard: str = "") -> bytes:
        """STOR `path` on the port of `epsv_reply`, the bytes right behind the command, then the command `then`
        (pipelined); the 150 and 226 read, and `then`'s reply returned. `guard`: a path whose SIZE is asked in
        the STOR's flight, and must be absent (550)."""
        data_sock = self.data_socket(epsv_reply)
        self.sock.sendall(f"SIZE {guard}\r\nSTOR {path}\r\n".encode() if guard else f"STOR {path}\r\n".encode())
        data_sock.sendall(data)
        data_sock.close()
        if then:
            self.sock.sendall(f"{then}\r\n".encode())
        if guard:
            self.expect("550")
        self.expect("150")
        self.expect("226")
        return self.reply() if then else b""

    def close(self) -> None:
        self.sock.sendall(b"QUIT\r\n")
        self.reader.close()
        self.sock.close()


def send_bare(control: Control, files: list[Path], remote: str) -> None:
    (epsv,) = control.flight("EPSV", expect=("229",)) if files else (b"",)
    for index, path in enumerate(files):
        with open(path, "rb") as local:
            data = local.read()
        more = index + 1 < len(files)
        epsv = control.store(f"{remote}/{path.name}", data, epsv, then="EPSV" if more else "")
        if more and not epsv.startswith(b"229"):
            raise RuntimeError(f"expected 229, got {epsv!r}")


def send_guarded(control: Control, files: list[Path], remote: str) -> None:
    (epsv,) = control.flight("EPSV", expect=("229",)) if files else (b"",)
    for index, path in enumerate(files):
        with open(path, "rb") as local:
            size = os.fstat(local.fileno()).st_size
            data = local.read()
            final, part = f"{remote}/{path.name}", f"{remote}/.{path.name}.part"
            control.store(part, data, epsv, guard=final)
            if os.fstat(local.fileno()).st_size != size:
                raise RuntimeError(f"{path} changed while it was sent")
        more = index + 1 < len(files)
        replies = control.flight(
            f"RNFR {part}",
            f"RNTO {final}",
            f"SIZE {final}",
            *(["EPSV"] if more else []),
            expect=("350", "250", "213", *(["229"] if more else [])),
        )
        if int(replies[2][4:]) != size:
            raise RuntimeError(f"{final}: the server has {replies[2]!r}, local {size} bytes")
        os.remove(path)
        if more:
            epsv = replies[3]


SENDERS: dict[str, Callable[[Control, list[Path], str], None]] = {"bare": send_bare, "guarded": send_guarded}


# --- N connections: threads in one process, or processes


def _worker(server: Server, files: list[Path], remote: str, mode: str, ready: Any, go: Any, cpu: Any) -> None:
    try:
        control = Control(server)
    except BaseException:
        ready.abort()  # the main thread must not wait for a session that will never log in
        raise
    ready.wait()
    go.wait()
    started = time.process_time()
    SENDERS[mode](control, files, remote)
    if cpu is not None:
        cpu.put(time.process_time() - started)
    control.close()


def run_clients(server: Server, files: list[Path], remote: str, mode: str, connections: int, how: str) -> dict:
    """Seconds and client CPU seconds for `files` over `connections` sessions (`how`: threads or processes)."""
    shares = [files[i::connections] for i in range(connections)]
    if how in ("loop", "loop+journal"):
        return _run_loop(server, shares, remote, journal=how == "loop+journal")
    if how == "threads":
        ready, go = threading.Barrier(connections + 1), threading.Event()
        workers: list[Any] = [
            threading.Thread(target=_worker, args=(server, share, remote, mode, ready, go, None)) for share in shares
        ]
        cpu_queue = None
    else:
        context = multiprocessing.get_context("fork")
        ready, go, cpu_queue = context.Barrier(connections + 1), context.Event(), context.SimpleQueue()
        workers = [
            context.Process(target=_worker, args=(server, share, remote, mode, ready, go, cpu_queue))
            for share in shares
        ]
    for worker in workers:
        worker.start()
    ready.wait()  # every session logged in
    server_before, cpu_before = procs.cpu_seconds(server.pid), time.process_time()
    started = time.monotonic()
    go.set()
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - started
    if cpu_queue is None:
        cpu = time.process_time() - cpu_before
    else:
        if any(worker.exitcode for worker in workers):  # (before the queue: a failed worker put nothing on it)
            raise RuntimeError(f"a worker failed: exit codes {[w.exitcode for w in workers]}")
        cpu = sum(cpu_queue.get() for _ in workers)
    return {"seconds": seconds, "cpu_seconds": cpu, "server_cpu_seconds": procs.cpu_seconds(server.pid) - server_before}


def _run_loop(server: Server, shares: list[list[Path]], remote: str, *, journal: bool) -> dict:
    """`floor_loop`: the N connections from one thread (logged in before the clock starts)."""
    from tests.benchmarks.floor_loop import open_sessions, run_loop

    sessions = open_sessions(server, shares, remote)
    journal_path = shares[0][0].parent.parent / "journal" if journal and shares[0] else None
    server_before, cpu_before = procs.cpu_seconds(server.pid), time.process_time()
    started = time.monotonic()
    run_loop(sessions, journal_path)
    seconds = time.monotonic() - started
    cpu = time.process_time() - cpu_before
    if journal_path is not None:
        journal_path.unlink()
    return {"seconds": seconds, "cpu_seconds": cpu, "server_cpu_seconds": procs.cpu_seconds(server.pid) - server_before}


def _names(files: int) -> list[str]:
    return [f"floor@2024-05-01@f-{i:06d}.wav" for i in range(files)]


def one_client_run(work: Path, mode: str, how: str, files: int, connections: int) -> dict:
    names = _names(files)
    local = fresh_dir(work / "local")
    paths = write_files(local, names, SIZE)
    os.sync()
    with ftp_server(work, 0.0, "vsftpd") as server:
        baselines.make_remote_dir(server, REMOTE)
        figures = run_clients(server, paths, server.path(REMOTE), mode, connections, how)
        remote = server.root / REMOTE.strip("/")
        problems = verify(remote, names, SIZE, exact=True) + leftovers(server.root)
        if mode == "guarded":
            problems += [f"still local: {p.name}" for p in local.iterdir()]
        if problems:
            raise RuntimeError(f"{mode}/{how}: {problems[:5]}")
    return figures


def one_lftp_run(work: Path, files: int, connections: int) -> dict:
    local = fresh_dir(work / "local")
    write_files(local, _names(files), SIZE)
    os.sync()
    with ftp_server(work, 0.0, "vsftpd") as server:
        before = procs.cpu_seconds(server.pid)
        timed = baselines.lftp_mirror(server, local, REMOTE, parallel=connections)
        server_cpu = procs.cpu_seconds(server.pid) - before
        problems = verify(server.root / REMOTE.strip("/"), _names(files), SIZE, exact=True)
        if problems:
            raise RuntimeError(f"lftp: {problems[:5]}")
    return {"seconds": timed.seconds, "cpu_seconds": timed.cpu_seconds, "server_cpu_seconds": server_cpu}


def one_uploader_run(work: Path, files: int, connections: int) -> dict:
    """The uploader's own bench row (`workloads.ours_drop_in`) on a fresh vsftpd."""
    from tests.benchmarks.harness import file_name
    from tests.benchmarks.workloads import THROUGHPUT_DEBOUNCE, ours_drop_in

    names = [file_name(i) for i in range(files)]
    with ftp_server(work, 0.0, "vsftpd") as server:
        figures = ours_drop_in(
            work, server, names, SIZE, debounce=THROUGHPUT_DEBOUNCE, connections=connections, exact=True
        )
    return figures


# --- watchdog alone

_MOVER = """
import os, sys
staging, folder = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(staging))
for name in names:
    os.rename(os.path.join(staging, name), os.path.join(folder, name))
for name in names:
    os.remove(os.path.join(folder, name))
"""


def watchdog_run(work: Path, files: int) -> dict:
    """CPU of this process (watchdog's threads; the moves and deletes run in a child) to hear `files` files moved
    in, then deleted, through the uploader's own observer and event filter (`pipeline.stream.observers`,
    `EVENT_FILTER`: the deletes are not asked of the kernel): what its watcher gets per file in the bench row."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler

    from pipeline.outbox.lock import STATE_FOLDER
    from pipeline.stream.observers import new_observer
    from pipeline.stream.watch import EVENT_FILTER

    outbox = fresh_dir(work / "watched")
    folder = outbox / "audio"
    folder.mkdir()
    staging = fresh_dir(work / "staging")
    write_files(staging, _names(files), SIZE)
    os.sync()
    heard = {"created": 0}
    done = threading.Event()

    class Counter(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            if event.event_type in heard and not event.is_directory:
                heard[event.event_type] += 1
                if heard["created"] == files:
                    done.set()

    observer = new_observer("inotify", 1.0, str(outbox), (STATE_FOLDER,))
    observer.schedule(Counter(), str(outbox), recursive=True, event_filter=EVENT_FILTER)
    observer.start()
    try:
        time.sleep(0.5)
        cpu_before, started = time.process_time(), time.monotonic()
        mover = subprocess.run([sys.executable, "-c", _MOVER, str(staging), str(folder)], check=True)
        del mover
        if not done.wait(120):
            raise RuntimeError(f"watchdog heard {heard} of {files} moved in")
        time.sleep(0.2)  # what the deletes would still cost (nothing, unless they are asked)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu_before
    finally:
        observer.stop()
        observer.join()
    return {"seconds": seconds, "cpu_seconds": cpu, "server_cpu_seconds": 0.0}


# --- the report


def _row(label: str, runs: list[dict], files: int, lftp_runs: list[dict]) -> str:
    """Medians; the ratio to lftp is taken within each round (the cases take turns), then the median."""
    rate = statistics.median(files / r["seconds"] for r in runs)
    cpu = statistics.median(1000 * r["cpu_seconds"] / files for r in runs)
    server = statistics.median(1000 * r["server_cpu_seconds"] / files for r in runs)
    ratio = statistics.median(lftp["seconds"] / r["seconds"] for r, lftp in zip(runs, lftp_runs, strict=True))
    spread = ", ".join(f"{files / r['seconds']:.0f}" for r in runs)
    return f"| {label} | {rate:,.0f} ({spread}) | {ratio:.2f}x | {cpu:.2f} | {server:.2f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a fresh one under /tmp)")
    parser.add_argument("--no-uploader", action="store_true", help="leave out the uploader's own row")
    args = parser.parse_args(argv)
    work = fresh_dir(args.work or Path(f"/tmp/beemon-floor-{os.getpid()}"))
    n, c = args.files, args.connections
    cases: list[tuple[str, Callable[[], dict]]] = [
        ("lftp mirror -R", lambda: one_lftp_run(work, n, c)),
        ("floor, bare STOR, threads", lambda: one_client_run(work, "bare", "threads", n, c)),
        ("floor, bare STOR, processes", lambda: one_client_run(work, "bare", "processes", n, c)),
        ("floor, guarded, threads", lambda: one_client_run(work, "guarded", "threads", n, c)),
        ("floor, guarded, processes", lambda: one_client_run(work, "guarded", "processes", n, c)),
        ("floor, guarded, one thread (selector)", lambda: one_client_run(work, "guarded", "loop", n, c)),
        (
            "floor, guarded + SHA-256 + journal fsync'ed, one thread (selector)",
            lambda: one_client_run(work, "guarded", "loop+journal", n, c),
        ),
    ]
    if not args.no_uploader:
        cases.append(("beemon-uploader run", lambda: one_uploader_run(work, n, c)))
    results: dict[str, list[dict]] = {label: [] for label, _ in cases}
    load_before = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for _ in range(args.runs):  # the cases take turns, so a change in the machine's load touches them all
        for label, case in cases:
            results[label].append(case())
    watch = [watchdog_run(work, n) for _ in range(args.runs)]
    load_after = os.getloadavg()
    print(
        f"{started}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, {n:,} x {SIZE} B, {c} connections, "
        f"vsftpd on loopback, {args.runs} rounds (median, then each round; the ratio to lftp within each round), "
        f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    )
    print()
    print("| client | files/s | of lftp | client CPU ms/file | vsftpd CPU ms/file |")
    print("|---|---|---|---|---|")
    for label, runs in results.items():
        print(_row(label, runs, n, results["lftp mirror -R"]))
    per_file = [1000 * r["cpu_seconds"] / n for r in watch]
    print()
    print(
        f"watchdog alone (inotify observer, the uploader's event filter): {statistics.median(per_file):.3f} ms of CPU"
        f" per file to hear it moved in (its delete is not asked of the kernel; runs: {', '.join(f'{v:.3f}' for v in per_file)})"
    )
    fresh_dir(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
