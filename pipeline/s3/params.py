"""The plain values an S3 transport runs on: one bucket on one endpoint, with one key pair.

Frozen and picklable; the secret never appears in a repr. The remote path model is the FTP one:
the key of a file is `<prefix>/<station>/<date>/<sensor>/<name>`, so `remote_root` is `/<prefix>`
and the transport takes the leading `/` off. `host`, `port`, `username` and `password` carry the
names the sink's messages use for every transport.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pipeline.transport.masking import masked_repr

MIB = 1024 * 1024
#: S3's smallest part (all but the last) and its most parts per upload.
MIN_PART = 5 * MIB
MAX_PARTS = 10_000


@dataclass(frozen=True, slots=True)
class S3Params:
    """One bucket: endpoint, region, bucket, key prefix, credentials, and when to switch to multipart.

    `endpoint_url` empty means AWS itself. Files of at least `multipart_threshold_mb` MiB go up in
    parts of `part_size_mb` MiB (raised where a file would need more than 10,000 parts). `station`
    scopes the clean-up at start: only incomplete multipart uploads under `<prefix>/<station>/`
    are this uploader's own.
    """

    bucket: str
    endpoint_url: str = ""
    region: str = "us-east-1"
    prefix: str = ""
    access_key_id: str = ""
    secret_access_key: str = field(default="", repr=False)
    station: str = ""
    multipart_threshold_mb: float = 64.0
    part_size_mb: float = 16.0
    timeout: float = 30.0
    kind: str = "s3"

    def __post_init__(self) -> None:
        if not self.bucket:
            raise ValueError("bucket must be named")
        if self.multipart_threshold_mb <= 0 or self.part_size_mb * MIB < MIN_PART:
            raise ValueError("multipart_threshold_mb must be positive and part_size_mb at least 5")
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive, not {self.timeout}")

    def __repr__(self) -> str:
        return masked_repr(self, "secret_access_key")

    __str__ = __repr__

    @property
    def host(self) -> str:
        return urlsplit(self.endpoint_url).hostname or f"s3.{self.region}.amazonaws.com"

    @property
    def port(self) -> int:
        parts = urlsplit(self.endpoint_url)
        return parts.port or (80 if parts.scheme == "http" else 443)

    @property
    def username(self) -> str:
        return self.access_key_id

    @property
    def password(self) -> str:
        return self.secret_access_key

    @property
    def remote_root(self) -> str:
        return "/" + self.prefix.strip("/")

    @property
    def threshold_bytes(self) -> int:
        return int(self.multipart_threshold_mb * MIB)

    def part_size(self, size: int) -> int:
        """The part size for a file of `size` bytes: `part_size_mb`, or more where 10,000 parts would not hold it."""
        part = int(self.part_size_mb * MIB)
        return max(part, -(-size // MAX_PARTS))

    @property
    def login_check(self) -> str:
        return (
            f"check s3.access_key_id ({self.access_key_id!r}) and the secret"
            " (BEEMON_S3__SECRET_ACCESS_KEY or .secrets.toml), and s3.bucket's policy"
        )

    @property
    def reach_check(self) -> str:
        return "check s3.endpoint_url and the network"
