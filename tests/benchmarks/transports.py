"""Throughput and CPU per GB of `run --once` for each sink kind, against C and Go servers on loopback.

`python -m tests.benchmarks.transports [--files 20] [--mb 10] [--rounds 3]` writes `--files`
recordings of `--mb` MB into an outbox, runs `beemon-uploader run --once` (production settings, 4
connections, atomic rename and size check on) against vsftpd (FTP), OpenSSH's sshd (SFTP) and
SeaweedFS (S3, multipart above 64 MiB: these files go up in one PUT each), and prints the median MB/s
from start to exit (start-up included) and the uploader's CPU seconds (user + system of the CLI
and the sink process, from `RUSAGE_CHILDREN`; the servers are not counted) per GB. Rows are in
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import run_cli
from tests.servers import start_vsftpd
from tests.transports.conftest import Target, _make, recording


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _round(env: dict[str, str], outbox: Path, files: int, mb: int) -> tuple[float, float]:
    for index in range(files):
        recording(outbox, "audio", "2024-05-01", f"10-{index:02d}-00", mb * 1_000_000)
    os.sync()
    cpu, start = _cpu(), time.monotonic()
    done = run_cli(env, "run", "--once", timeout=600)
    seconds, used = time.monotonic() - start, _cpu() - cpu
    assert done.returncode == 0, done.stderr[-2000:]
    total = files * mb * 1e6
    return total / seconds / 1e6, used / (total / 1e9)


def _ftp_env(folder: Path, outbox: Path) -> tuple[dict[str, str], object]:
    server = start_vsftpd(folder / "vsftpd")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
    site = folder / "site"
    site.mkdir(exist_ok=True)
    env.update(
        BEEMON_ENV="production",
        BEEMON_CONFIG_DIR=str(site),
        BEEMON_LOCAL_OUTPUT_DIRECTORY=str(outbox),
        BEEMON_STATION="rpi4-7",
        BEEMON_FTP__HOST="127.0.0.1",
        BEEMON_FTP__PORT=str(server.port),
        BEEMON_FTP__USERNAME=server.username,
        BEEMON_FTP__PASSWORD=server.password or "anonymous",
        BEEMON_FTP__REMOTE_ROOT=server.remote_root,
        BEEMON_UPLOAD__DEBOUNCE_SECONDS="0.2",
    )
    return env, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--mb", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for kind in ("ftp", "sftp", "s3"):
        folder = Path(tempfile.mkdtemp(prefix=f"bench-{kind}-"))
        outbox = folder / "outbox"
        outbox.mkdir()
        try:
            if kind == "ftp":
                env, server = _ftp_env(folder, outbox)
                rounds = [_round(env, outbox, args.files, args.mb) for _ in range(args.rounds)]
                server.stop()  # type: ignore[attr-defined]
            else:
                for target in _make(kind, folder, outbox):
                    assert isinstance(target, Target)
                    env = target.env(BEEMON_SFTP__CONNECTIONS="4", BEEMON_S3__CONNECTIONS="4")
                    env["BEEMON_S3__MULTIPART_THRESHOLD_MB"] = "64"
                    rounds = [_round(env, outbox, args.files, args.mb) for _ in range(args.rounds)]
            rate = statistics.median(r[0] for r in rounds)
            cpu = statistics.median(r[1] for r in rounds)
            print(f"{kind}: {rate:.0f} MB/s, {cpu:.1f} CPU s per GB ({args.files} x {args.mb} MB, run --once)")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
