"""Which SFTP client: asyncssh against paramiko, the same files to the same sshd on loopback.

`python -m tests.benchmarks.sftp_clients [--files 5] [--mb 20]` puts `--files` files of `--mb` MB
each with both clients (each over one connection, AES-GCM where both offer it), three rounds,
and prints the median MB/s and the client's CPU seconds per GB (user + system of this process,
which holds the client alone: the server is sshd). The figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from tests.sshd import SshdFiles, start_sshd

CIPHER = "aes128-gcm@openssh.com"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def put_asyncssh(server: SshdFiles, files: list[Path], remote: str) -> None:
    import asyncssh

    async def run() -> None:
        async with (
            asyncssh.connect(
                "127.0.0.1",
                server.port,
                username=server.username,
                client_keys=[str(server.key_file)],
                known_hosts=str(server.known_hosts),
                encryption_algs=[CIPHER],
            ) as conn,
            conn.start_sftp_client() as sftp,
        ):
            for path in files:
                await sftp.put(str(path), f"{remote}/{path.name}")

    asyncio.run(run())


def put_paramiko(server: SshdFiles, files: list[Path], remote: str) -> None:
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(str(server.known_hosts))
    client.connect(
        "127.0.0.1",
        server.port,
        username=server.username,
        key_filename=str(server.key_file),
        disabled_algorithms={"cipher": [c for c in paramiko.Transport._preferred_ciphers if c != CIPHER]},
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        sftp = client.open_sftp()
        for path in files:
            sftp.put(str(path), f"{remote}/{path.name}")
        sftp.close()
    finally:
        client.close()


def measure(
    put: Callable[[SshdFiles, list[Path], str], None], server: SshdFiles, files: list[Path]
) -> tuple[float, float]:
    """(MB/s, CPU s per GB) of one round."""
    total = sum(p.stat().st_size for p in files)
    remote = server.root / f"round-{time.monotonic_ns()}"
    remote.mkdir()
    cpu, start = _cpu(), time.monotonic()
    put(server, files, str(remote))
    seconds, used = time.monotonic() - start, _cpu() - cpu
    assert sum(p.stat().st_size for p in remote.iterdir()) == total
    for path in remote.iterdir():
        path.unlink()
    remote.rmdir()
    return total / seconds / 1e6, used / (total / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5)
    parser.add_argument("--mb", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = start_sshd(Path(folder) / "sshd")
        try:
            files = []
            for index in range(args.files):
                path = Path(folder) / f"file-{index}.bin"
                path.write_bytes(os.urandom(args.mb * 1_000_000))
                files.append(path)
            for name, put in (("asyncssh", put_asyncssh), ("paramiko", put_paramiko)):
                rounds = [measure(put, server, files) for _ in range(args.rounds)]
                rate = statistics.median(r[0] for r in rounds)
                cpu = statistics.median(r[1] for r in rounds)
                print(f"{name}: {rate:.0f} MB/s, {cpu:.1f} CPU s per GB ({args.files} x {args.mb} MB, {CIPHER})")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
