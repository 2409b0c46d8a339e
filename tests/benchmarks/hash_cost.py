"""What hashing and the manifest cost (issue 14): client CPU per GB by send mode, beside lftp, and the
manifest's round trips per file.

Run: ``python -m tests.benchmarks.hash_cost [--gib 1] [--files 200]``; prints Markdown rows for
docs/benchmarks.md. The server is the bench's pyftpdlib in a process of its own (its CPU is not
counted). CPU rows: one `UploadSession.upload` of one file in a child process, user + system time
of that call alone (`resource.getrusage(RUSAGE_SELF)` around it), best of three, per GiB:

- `none, sendfile`: today's plain-FTP path (zero-copy);
- `none, buffered`: 1 MiB reads and `sendall` (`upload.checksum = "none"` with sendfile off);
- `sha256, buffered`: what `upload.checksum = "sha256"` does (each block read, sent, hashed);
- `sha256, sendfile + read`: the alternative: `sendfile` each block, then read it again to hash;
- `lftp put`: lftp 4's `put` of the same file (CPU from the child's rusage, start-up included).

Manifest row: `beemon-uploader run --once` over `--files` files of one past day with `checksum =
sha256` and with `none`; the commands the server received, by verb, per file (each command is at
most a round trip; pipelined ones share theirs).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USER = "bench"
CHILD = r"""
import resource, sys
from pipeline.ftp import hashing, session as session_module
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadSession
port, password, path, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if mode == "sha256-sendfile-read":
    def send(conn, local, offset, count, chunk, *, throttle, aborted):
        return hashing.send_then_read(conn, local, offset, count, chunk)
    session_module.send_hashed = send
session = UploadSession(FtpParams("127.0.0.1", int(port), "bench", password, "/"), use_sendfile=mode != "none-buffered")
session.checksum = mode.startswith("sha256")
session.connect()
size = __import__("os").path.getsize(path)
before = resource.getrusage(resource.RUSAGE_SELF)
session.upload(path, "/big.bin", size)
after = resource.getrusage(resource.RUSAGE_SELF)
session.close()
print((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
"""
MODES = ("none-sendfile", "none-buffered", "sha256-buffered", "sha256-sendfile-read")


def start_server(root: Path, password: str, stats: Path | None = None) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-m", "tests.benchmarks.ftp_server", "--root", str(root), "--user", USER]
    command += ["--password", password] + (["--stats", str(stats)] if stats else [])
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    return server, int(line.split()[1])


def stop_server(server: subprocess.Popen[str]) -> None:
    server.send_signal(signal.SIGTERM)
    server.wait(30)


def cpu_rows(work: Path, gib: float) -> list[tuple[str, float]]:
    big = work / "big.bin"
    with big.open("wb") as out:
        for _ in range(int(gib * 1024)):
            out.write(os.urandom(1 << 20))
    password = secrets.token_urlsafe(8)
    root = work / "root"
    root.mkdir()
    server, port = start_server(root, password)
    rows = []
    try:
        for mode in MODES:
            best = min(
                float(subprocess.check_output([sys.executable, "-c", CHILD, str(port), password, str(big), mode]))
                for _ in range(3)
            )
            rows.append((mode, best / gib))
        if shutil.which("lftp"):
            script = f"set ftp:ssl-allow no; open -u {USER},{password} -p {port} 127.0.0.1; put {big} -o /lftp.bin"
            best = float("inf")
            for _ in range(3):
                process = subprocess.Popen(["lftp", "-c", script], stdout=subprocess.DEVNULL)
                _, _, usage = os.wait4(process.pid, 0)
                best = min(best, usage.ru_utime + usage.ru_stime)
            rows.append(("lftp put", best / gib))
    finally:
        stop_server(server)
    return rows


def manifest_rows(work: Path, files: int) -> dict[str, dict[str, float]]:
    per_file: dict[str, dict[str, float]] = {}
    for checksum in ("sha256", "none"):
        outbox, root, stats = work / f"outbox-{checksum}", work / f"root-{checksum}", work / f"stats-{checksum}.json"
        day = outbox / "audio" / "2022-07-19"
        day.mkdir(parents=True)
        root.mkdir()
        for index in range(files):
            (day / f"bench@2022-07-19@{index // 3600:02d}-{index // 60 % 60:02d}-{index % 60:02d}.wav").write_bytes(
                os.urandom(1000)
            )
        password = secrets.token_urlsafe(8)
        server, port = start_server(root, password, stats)
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
        env.update(
            BEEMON_ENV="production",
            BEEMON_CONFIG_DIR=str(work),
            BEEMON_LOCAL_OUTPUT_DIRECTORY=str(outbox),
            BEEMON_STATION="bench",
            BEEMON_FTP__HOST="127.0.0.1",
            BEEMON_FTP__PORT=str(port),
            BEEMON_FTP__USERNAME=USER,
            BEEMON_FTP__PASSWORD=password,
            BEEMON_FTP__REMOTE_ROOT="/data",
            BEEMON_UPLOAD__CHECKSUM=checksum,
            BEEMON_UPLOAD__DEBOUNCE_SECONDS="0",
        )
        subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "run", "--once"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stop_server(server)
        counts = json.loads(stats.read_text())
        per_file[checksum] = {verb: n / files for verb, n in sorted(counts.items())}
    return per_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beemon-hash-bench-") as folder:
        work = Path(folder)
        started = time.monotonic()
        for mode, seconds in cpu_rows(work, args.gib):
            print(f"| client CPU per GiB, {mode} | {seconds:.2f} s |")
        per_file = manifest_rows(work, args.files)
        total = {name: sum(verbs.values()) for name, verbs in per_file.items()}
        print(f"| commands per file, checksum sha256 | {total['sha256']:.2f} | {per_file['sha256']} |")
        print(f"| commands per file, checksum none | {total['none']:.2f} | {per_file['none']} |")
        print(f"(took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
