"""A delivered file's bookkeeping (manifest line, local delete, result) overlaps the next file's first round trip.

On a link every flight waits a round trip; what the worker does between the rename's replies and
the next file's STOR adds to each file. With the next job taken during the rename, that work is
done once the next STOR and its bytes are on their way, and never skipped.
"""

from __future__ import annotations

import os
import time

from operators.model import UploadJob
from pipeline.sink.model import Outcome, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write

#: How long a result waits for the next file's STOR to reach the server (it is on its way, or never comes).
STOR_SEEN_WITHIN = 1.0


def test_each_result_but_the_last_comes_once_the_next_stor_is_on_its_way(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    names = [f"f{i}.wav" for i in range(4)]
    contents = {name: write(outbox / name, 2000 + i) for i, name in enumerate(names)}
    seen: dict[str, tuple[bool, bool]] = {}  # name -> (the next STOR reached the server, the local copy is gone)
    results: list[UploadResult] = []

    def emit(result: UploadResult) -> None:
        name = os.path.basename(result.local_path)
        following = names.index(name) + 1
        if following < len(names):
            deadline = time.monotonic() + STOR_SEEN_WITHIN
            while len(faults.commands("STOR")) <= following and time.monotonic() < deadline:
                time.sleep(0.005)
        seen[name] = (len(faults.commands("STOR")) > following, not (outbox / name).exists())
        results.append(result)

    sink = Sink(params_for(server, credentials), UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5), emit)
    for name, data in contents.items():
        sink.put(UploadJob(str(outbox / name), f"/upload/{name}", len(data), (outbox / name).stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) == len(names), timeout=30)
    finally:
        sink.stop(5)
    assert [os.path.basename(r.local_path) for r in results] == names
    assert {r.outcome for r in results} == {Outcome.DELIVERED}
    assert seen == {name: (name != names[-1], True) for name in names}, seen
    assert all((ftp_root / "upload" / name).read_bytes() == data for name, data in contents.items())
