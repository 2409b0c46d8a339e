"""What hashing and the manifest cost (issue 14): client CPU per GB by send mode, beside lftp, and the
manifest's commands per file. Part of `make bench` (the "hash" rows); alone:
``python -m tests.benchmarks.hash_cost [--gib 1] [--files 200]``.

The server is the bench's pyftpdlib in a process of its own (its CPU is not counted). CPU: one
`UploadSession.upload` of one file in a child process, user + system time of that call alone
(`resource.getrusage(RUSAGE_SELF)` around it), best of three, per GB:

- `none-sendfile`: the plain-FTP path without hashing (zero-copy);
- `none-buffered`: 1 MiB reads and `sendall` (`upload.checksum = "none"` with sendfile off);
- `sha256-buffered`: what `upload.checksum = "sha256"` does (each block read, sent, hashed);
- `sha256-sendfile-read`: the alternative: `sendfile` each block, then read it again to hash it;
- `lftp`: lftp's `put` of the same file (CPU from the child's rusage, start-up included).

Manifest: `beemon-uploader run --once` over `--files` files of one past day with `checksum =
sha256` and with `none`; the commands the server received per file, and of them those naming
SHA256SUMS (plus the EPSV before each of its transfers): what the manifest costs. Each command is
at most a round trip; pipelined ones share theirs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.benchmarks import baselines, report
from tests.benchmarks.harness import fresh_dir
from tests.benchmarks.servers import ftp_server, uploader
from tests.benchmarks.workloads import Figures

CHILD = r"""
import resource, sys
from pipeline.ftp import hashing, store
from pipeline.ftp.params import FtpParams
from pipeline.ftp.session import UploadSession
port, user, password, path, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
if mode == "sha256-sendfile-read":
    def send(conn, local, offset, count, chunk, *, throttle, aborted, started=None):
        if started is not None:
            started()  # (the sender's hook for the previous file's bookkeeping: none here)
        return hashing.send_then_read(conn, local, offset, count, chunk)
    store.send_hashed = send
session = UploadSession(FtpParams("127.0.0.1", int(port), user, password, "/"), use_sendfile=mode != "none-buffered")
# what `upload.checksum` sets: the sender hashes what it sends, the check wants a digest (else it reads the file)
session.parts.sender.checksum = session.checks.checksum = mode.startswith("sha256")
session.connect()
size = __import__("os").path.getsize(path)
before = resource.getrusage(resource.RUSAGE_SELF)
session.upload(path, "/big.bin", size)
after = resource.getrusage(resource.RUSAGE_SELF)
session.close()
print((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
"""
MODES = ("none-sendfile", "none-buffered", "sha256-buffered", "sha256-sendfile-read")
MANIFEST_DAY = "2022-07-19"


def _lftp_put(port: int, user: str, password: str, big: Path) -> float:
    script = f"set ftp:ssl-allow no; open -u {user},{password} -p {port} 127.0.0.1; put {big} -o /lftp.bin"
    process = subprocess.Popen(["lftp", "-c", script], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "lftp put failed"
    return usage.ru_utime + usage.ru_stime


def cpu_per_gb(work: Path, gib: float, tries: int = 3) -> Figures:
    """`cpu_<mode>_s_per_gb` for each of MODES, and `cpu_lftp_s_per_gb` (None without lftp): best of `tries`."""
    big = work / "big.bin"
    with big.open("wb") as out:
        for _ in range(int(gib * 1024)):
            out.write(os.urandom(1 << 20))
    gb = big.stat().st_size / 1e9
    figures: Figures = {"cpu_lftp_s_per_gb": None}
    with ftp_server(work) as server:
        login = [str(server.port), server.username, server.password]
        for mode in MODES:
            runs = [
                subprocess.check_output([sys.executable, "-c", CHILD, *login, str(big), mode]) for _ in range(tries)
            ]
            figures[f"cpu_{mode}_s_per_gb"] = min(float(out) for out in runs) / gb
        if baselines.lftp_available():
            figures["cpu_lftp_s_per_gb"] = min(_lftp_put(*login, big) for _ in range(tries)) / gb  # type: ignore[arg-type]
    big.unlink()
    return figures


def _day_outbox(outbox: Path, files: int) -> None:
    day = outbox / "audio" / MANIFEST_DAY
    day.mkdir(parents=True)
    for index in range(files):
        name = f"bench@{MANIFEST_DAY}@{index // 3600:02d}-{index // 60 % 60:02d}-{index % 60:02d}.wav"
        (day / name).write_bytes(os.urandom(1000))


def manifest_commands(work: Path, files: int) -> Figures:
    """`commands_per_file_<checksum>` for sha256 and none, and `manifest_commands_per_file` (sha256's)."""
    figures: Figures = {}
    for checksum in ("sha256", "none"):
        outbox = fresh_dir(work / f"outbox-{checksum}")
        _day_outbox(outbox, files)
        with ftp_server(work) as server:
            once = uploader(work, outbox, server, debounce=0)
            once.extra_env["BEEMON_UPLOAD__CHECKSUM"] = checksum
            assert once.run_once() == 0, once.log()[-2000:]
            counts = server.stop()
        plain = sum(n for verb, n in counts.items() if ":" not in verb)
        figures[f"commands_per_file_{checksum}"] = plain / files
        if checksum == "sha256":
            manifest = {verb.split(":", 1)[1]: n for verb, n in counts.items() if verb.startswith("SHA256SUMS:")}
            transfers = manifest.get("STOR", 0) + manifest.get("RETR", 0)  # each after an EPSV of its own
            figures["manifest_commands_per_file"] = (sum(manifest.values()) + transfers) / files
    return figures


def measure(work: Path, gib: float = 1.0, files: int = 200, tries: int = 3) -> Figures:
    return {**cpu_per_gb(work, gib, tries), **manifest_commands(work, files)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    from tests.benchmarks.rows import hash_rows

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="beemon-hash-bench-") as folder:
        figures = measure(Path(folder), args.gib, args.files)
    print(report.table(hash_rows(figures, args.gib, args.files)))
    print(f"(took {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
