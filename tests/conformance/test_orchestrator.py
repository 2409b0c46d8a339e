"""An orchestrator script written in the reference's style (Process + queue + "stop" + join), run in a
subprocess against the loopback server, with the start method fork and with spawn.

The scripts below are what beemon's orchestrator does with the original uploader; the only change
is the import. They set the start method after importing the uploader (which must not have fixed it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conformance.conftest import DAY, STATION, Station
from tests.helpers import station_files, write_file

STOP_DEADLINE_SECONDS = 10.0  # upload.stop_deadline_seconds, the default

ORCHESTRATOR = textwrap.dedent(
    '''
    import multiprocessing
    import sys
    import time
    from pathlib import Path

    from pipeline import Uploader  # the original: from uploader import Uploader


    def record(outbox: Path, count: int) -> None:
        """The recorder: a finished .wav every tenth of a second."""
        folder = outbox / "audio" / "{day}"
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            with open(folder / f"{station}@{day}@12-00-{{index:02d}}.wav", "wb") as handle:
                handle.write(b"live %d " % index * 1000)
            time.sleep(0.1)


    def main() -> None:
        multiprocessing.set_start_method(sys.argv[1])
        outbox = Path(sys.argv[2])
        command_queue = multiprocessing.Queue()
        uploader = Uploader(command_queue, None)
        uploader.start()
        record(outbox, 5)
        deadline = time.monotonic() + 60
        # The uploader's own state folder (its lock) is not a recording waiting to go.
        while any(p.is_file() and ".beemon" not in p.parts for p in outbox.rglob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        command_queue.put("stop")
        started = time.monotonic()
        uploader.join()
        print(f"joined after {{time.monotonic() - started:.2f}} s, exit code {{uploader.exitcode}}")


    if __name__ == "__main__":
        main()
    '''
).format(day=DAY, station=STATION)

WITHOUT_GUARD = textwrap.dedent(
    """
    import multiprocessing
    import sys

    from pipeline import Uploader

    multiprocessing.set_start_method(sys.argv[1], force=True)
    print("main module ran", flush=True)
    command_queue = multiprocessing.Queue()
    uploader = Uploader(command_queue, None)
    print("uploader constructed", flush=True)
    uploader.start()
    uploader.join(60)
    print(f"joined, exit code {uploader.exitcode}", flush=True)
    """
)


def run_script(station: Station, text: str, start_method: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    script = station.home / "orchestrator.py"
    script.write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEEMON_")}
    # BEEMON_STATION stands in for the Pi's host name, the original's station folder (this machine's differs).
    env.update(BEEMON_CONFIG_DIR=str(station.home.parent / "site"), BEEMON_STATION=STATION, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        [sys.executable, str(script), start_method, str(station.outbox)],
        cwd=station.home,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_reference_style_orchestrator_delivers_every_file_and_joins_within_the_stop_deadline(
    station: Station, start_method: str
):
    backlog = [
        write_file(station.outbox / "video" / DAY / f"{STATION}@{DAY}@0{i}-00-00.h264", b"backlog %d " % i * 2000)
        for i in range(3)
    ]
    past = time.time() - 120
    for path in backlog:
        os.utime(path, (past, past))
    done = run_script(station, ORCHESTRATOR, start_method)
    assert done.returncode == 0, done.stderr
    joined = re.search(r"joined after ([\d.]+) s, exit code (-?\d+)", done.stdout)
    assert joined, done.stdout + done.stderr
    assert float(joined[1]) < STOP_DEADLINE_SECONDS and joined[2] == "0", done.stdout
    for index, path in enumerate(backlog):
        assert station.remote("video", path.name).read_bytes() == b"backlog %d " % index * 2000
    for index in range(5):
        name = f"{STATION}@{DAY}@12-00-{index:02d}.wav"
        assert station.remote("audio", name).read_bytes() == b"live %d " % index * 1000
    assert station_files(station.outbox) == []


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_a_missing_main_guard_fails_with_a_clear_message_not_a_second_uploader(station: Station, start_method: str):
    done = run_script(station, WITHOUT_GUARD, start_method, timeout=60)
    assert done.stdout.count("uploader constructed") == 1, done.stdout  # never a second one, in any child
    assert "joined, exit code 1" in done.stdout, done.stdout + done.stderr
    assert 'create and start the uploader only under `if __name__ == "__main__":`' in done.stderr, done.stderr
