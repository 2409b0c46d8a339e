"""The SFTP and S3 sinks against real servers: OpenSSH's sshd and SeaweedFS, on loopback, per test.

A `Target` is one running server as the field tests see it: the uploader's environment for it
(`BEEMON_*`, production settings, `sink.kind` set), the files it holds by remote path, and
stop/restart for the outage scenarios. `target` is parametrized over both kinds.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until
from tests.seaweed import SeaweedFiles, start_seaweed
from tests.sshd import SshdFiles, start_sshd

STATION = "rpi4-7"
PREFIX = "lab"


@dataclass
class Target:
    kind: str
    server: Any  # SshdFiles | SeaweedFiles
    outbox: Path
    site: Path
    bucket: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
        env.update(
            BEEMON_ENV="production",
            BEEMON_CONFIG_DIR=str(self.site),
            BEEMON_LOCAL_OUTPUT_DIRECTORY=str(self.outbox),
            BEEMON_STATION=STATION,
            BEEMON_SINK__KIND=self.kind,
            BEEMON_UPLOAD__DEBOUNCE_SECONDS="0.2",
            BEEMON_UPLOAD__RETRY_BASE_SECONDS="0.1",
            BEEMON_UPLOAD__RETRY_MAX_SECONDS="1",
            PYTHONUNBUFFERED="1",
        )
        if self.kind == "sftp":
            server: SshdFiles = self.server
            env.update(
                BEEMON_SFTP__HOST="127.0.0.1",
                BEEMON_SFTP__PORT=str(server.port),
                BEEMON_SFTP__USERNAME=server.username,
                BEEMON_SFTP__KEY_FILE=str(server.key_file),
                BEEMON_SFTP__KNOWN_HOSTS=str(server.known_hosts),
                BEEMON_SFTP__REMOTE_ROOT=str(server.root / "bees"),
                BEEMON_SFTP__CONNECTIONS="2",
            )
        else:
            weed: SeaweedFiles = self.server
            env.update(
                BEEMON_S3__ENDPOINT_URL=weed.endpoint_url,
                BEEMON_S3__BUCKET=self.bucket,
                BEEMON_S3__PREFIX=PREFIX,
                BEEMON_S3__ACCESS_KEY_ID=weed.access_key,
                BEEMON_S3__SECRET_ACCESS_KEY=weed.secret_key,
                BEEMON_S3__MULTIPART_THRESHOLD_MB="5",
                BEEMON_S3__PART_SIZE_MB="5",
                BEEMON_S3__CONNECTIONS="2",
            )
        env.update(self.extra)
        env.update(overrides)
        return env

    def wrong_credentials(self) -> dict[str, str]:
        """An environment whose secret the server refuses, and that secret (it must show nowhere)."""
        secret = "Sekr1t-" + secrets.token_hex(6)
        if self.kind == "sftp":  # no key: the password alone, which this sshd never accepts
            return self.env(BEEMON_SFTP__KEY_FILE="", BEEMON_SFTP__PASSWORD=secret) | {"secret": secret}
        return self.env(BEEMON_S3__SECRET_ACCESS_KEY=secret) | {"secret": secret}

    def read_only(self) -> dict[str, str]:
        """An environment whose account may read but not write."""
        if self.kind == "sftp":
            return self.env(BEEMON_SFTP__PORT=str(self.server.readonly_port))
        return self.env(
            BEEMON_S3__ACCESS_KEY_ID=self.server.readonly_key, BEEMON_S3__SECRET_ACCESS_KEY=self.server.readonly_secret
        )

    def files(self, *, manifests: bool = False) -> dict[str, bytes]:
        """What the server holds by `<station>/<date>/<sensor>/<name>` (temporary names included; the
        per-day `<station>/<date>/SHA256SUMS` only with `manifests`)."""
        if self.kind == "sftp":
            root = self.server.root / "bees"
            found = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
        else:
            prefix = PREFIX + "/"
            found = {k.removeprefix(prefix): v for k, v in self.server.objects(self.bucket).items()}
        return {k: v for k, v in found.items() if manifests or not k.endswith("/SHA256SUMS")}

    def remove(self, remote: str) -> None:
        """Delete one delivered file on the server (by `<station>/<date>/<sensor>/<name>`), behind the uploader."""
        if self.kind == "sftp":
            (self.server.root / "bees" / remote).unlink()
        else:
            self.server.client().delete_object(Bucket=self.bucket, Key=f"{PREFIX}/{remote}")

    def truncate(self, remote: str, size: int) -> None:
        """Cut one delivered file on the server to its first `size` bytes (an object: written again shorter)."""
        if self.kind == "sftp":
            path = self.server.root / "bees" / remote
            path.write_bytes(path.read_bytes()[:size])
        else:
            key = f"{PREFIX}/{remote}"
            client = self.server.client()
            data = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            client.put_object(Bucket=self.bucket, Key=key, Body=data[:size])

    def incomplete(self) -> list[str]:
        """What a cut transfer left on the server: `.part` files, or incomplete multipart uploads."""
        if self.kind == "sftp":
            return [name for name in self.files() if name.endswith(".part")]
        uploads = self.server.client().list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])
        return [u["Key"] for u in uploads]

    def stop(self) -> None:
        """The server goes away at once (sshd: the daemon and its sessions; SeaweedFS: killed, as in a crash)."""
        if self.kind == "sftp":
            self.server.stop()
        else:
            self.server.kill()

    def restart(self) -> None:
        if self.kind == "sftp":
            self.server.restart()
        else:
            self.server.start()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    path = tmp_path / "outbox"
    path.mkdir()
    return path


def _make(kind: str, tmp_path: Path, outbox: Path, shared: SeaweedFiles | None = None) -> Iterator[Target]:
    """A target of `kind`: its own sshd; for S3 a bucket of its own on `shared`, else its own SeaweedFS."""
    site = tmp_path / "site"
    site.mkdir()
    if kind == "sftp":
        server: Any = start_sshd(tmp_path / "sshd")
        (server.root / "bees").mkdir()
        target = Target(kind, server, outbox, site)
    else:
        server = shared or start_seaweed(tmp_path / "seaweed")
        target = Target(kind, server, outbox, site, bucket=server.make_bucket("bees-" + secrets.token_hex(3)))
    try:
        yield target
    finally:
        if kind == "sftp":
            server.stop()
        elif shared is None:
            server.kill()


@pytest.fixture(scope="session")
def shared_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFiles]:
    """One SeaweedFS for the S3 tests that leave it running (each gets a bucket of its own): 1 s less per test."""
    server = start_seaweed(tmp_path_factory.mktemp("seaweed"))
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(params=["sftp", "s3"])
def target(request: pytest.FixtureRequest, tmp_path: Path, outbox: Path) -> Iterator[Target]:
    """A server of each kind; S3 on the session's SeaweedFS (unless the test stops it: `own_target`)."""
    shared = request.getfixturevalue("shared_seaweed") if request.param == "s3" else None
    yield from _make(request.param, tmp_path, outbox, shared)


@pytest.fixture(params=["sftp", "s3"])
def own_target(request: pytest.FixtureRequest, tmp_path: Path, outbox: Path) -> Iterator[Target]:
    """A server of each kind that the test may stop and start again."""
    yield from _make(request.param, tmp_path, outbox)


def recording(outbox: Path, sensor: str, day: str, time_of_day: str, size: int) -> Path:
    """Write and close one recording as a station does."""
    ext = {"audio": "wav", "video": "h264"}[sensor]
    path = outbox / sensor / day / f"{STATION}@{day}@{time_of_day}.{ext}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(os.urandom(size))
    return path


def remote_of(path: Path) -> str:
    """The remote path (under the root or prefix) of a recording written by `recording`."""
    sensor, day = path.parent.parent.name, path.parent.name
    return f"{STATION}/{day}/{sensor}/{path.name}"


def outbox_files(outbox: Path) -> list[Path]:
    return sorted(
        p
        for p in outbox.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(outbox).parts)
    )


__all__ = ["Target", "outbox_files", "recording", "remote_of", "wait_until"]
