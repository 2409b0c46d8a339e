"""A station's day whose SHA256SUMS the server answers "busy" for once: no line already there is lost.

Before, with pipelining (the default), a 450 to the manifest's SIZE read as "no such file", and the
day's manifest went up with this run's entries alone: the lab's and an older run's lines were gone
for good (and the journal that could rebuild them removed once the manifest was read back).
`run --once` against a real pyftpdlib server whose first two SIZEs of a SHA256SUMS are "450 busy"
(the day's first delivery asks it in its rename's flight, then the manifest's read): the recordings
go, and the manifest put within the run's retries holds the lines already on the server and the new
ones; the (past) day's journal is gone once that was read back.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import ClassVar

from pipeline.dev.embedded_server import EmbeddedFtpServer
from tests.e2e.conftest import REMOTE_ROOT, STATION, run_cli, uploader_env
from tests.ftp_faults import Faults, FaultyHandler
from tests.reliability.conftest import outbox_files
from tests.reliability.test_real_servers import DAY, _Target, put
from tests.reliability.test_verify_sizes import old_manifest_day


class BusyManifestOnce(FaultyHandler):
    """Answers the first two SIZEs of any SHA256SUMS with 450, as a server does while another client writes it."""

    busy: ClassVar[list[bool]] = [True, True]

    def ftp_SIZE(self, path: str) -> None:
        if path.endswith("/SHA256SUMS") and self.busy:
            self.busy.pop()
            self.respond("450 File busy, try later.")
            return
        super().ftp_SIZE(path)


def test_a_busy_manifest_keeps_every_line_already_on_the_server(outbox, tmp_path):
    root = tmp_path / "ftp-root"
    password = secrets.token_urlsafe(12)
    server = EmbeddedFtpServer(
        root, "station", password, handler_class=BusyManifestOnce, handler_attributes={"faults": Faults()}
    ).start()
    try:
        old = old_manifest_day(root, DAY, {"audio/gone-from-the-pi.wav": os.urandom(700)}, "# copied by the lab")
        contents = {f"{STATION}@{DAY}@10-00-0{i}.h264": os.urandom(30_000 + i) for i in range(3)}
        for name, content in contents.items():
            put(outbox, name, content)
        expected = old + "".join(
            f"# size {len(c)} video/{n}\n{hashlib.sha256(c).hexdigest()}  video/{n}\n"
            for n, c in sorted(contents.items())
        )
        env = uploader_env(_Target(server.port, "station", password), outbox, tmp_path)  # type: ignore[arg-type]
        once = run_cli(env, "run", "--once")
        assert once.returncode == 0, once.stderr[-3000:]
        assert outbox_files(outbox) == []  # the recordings went up, verified
        manifest = root / REMOTE_ROOT.lstrip("/") / STATION / DAY / "SHA256SUMS"
        assert manifest.read_text() == expected, once.stderr[-3000:]  # the busy answer lost nothing
        assert BusyManifestOnce.busy == []  # the fault was met
        assert "did not go up (SIZE: 450 File busy, try later.)" in once.stderr
        assert not list((outbox / ".beemon" / "manifests").glob("*.journal"))
    finally:
        server.stop()
