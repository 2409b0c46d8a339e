"""`run --once` ends with every pending day's SHA256SUMS on the server, or says which is not and keeps its journal.

A cron job's `--once` is the only uploader some stations run: a manifest it leaves behind (a run
killed before its manifest went up, a server that refused the manifest's STOR or its rename) must go
up with the next `--once`, even one with nothing to deliver, and a refusal within a run is retried on
the file's schedule (`--max-retries`). The real `beemon-uploader` process against a pyftpdlib server
that refuses on cue, replies 20 ms late, or stops dead at the manifest's STOR.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli
from tests.field.conftest import field_env, recording
from tests.field.test_once import error_lines
from tests.helpers import wait_until
from tests.reliability.conftest import WatchedServer, outbox_files, remote_of, start_uploader  # noqa: F401

DAY = "2024-05-03"  # a past day: its journal goes once the server's manifest was read back


def journals(outbox: Path) -> dict[str, str]:
    folder = outbox / ".beemon" / "manifests"
    return {p.name: p.read_text() for p in folder.glob("*.journal")} if folder.exists() else {}


def recordings(outbox: Path, day: str, count: int = 2) -> dict[str, bytes]:
    """`count` finished recordings of `day`, by their name in the day's manifest (`audio/<name>`)."""
    paths = [recording(outbox, "audio", day, f"09-00-{i:02d}", 3_000 + i, old=True) for i in range(count)]
    return {f"audio/{path.name}": path.read_bytes() for path in paths}


def manifest_text(contents: dict[str, bytes]) -> str:
    """The day's SHA256SUMS as the uploader writes it: a size line, then sha256sum's line, sorted by name."""
    return "".join(
        f"# size {len(data)} {name}\n{hashlib.sha256(data).hexdigest()}  {name}\n"
        for name, data in sorted(contents.items())
    )


def manifest_on(server: WatchedServer, day: str) -> Path:
    return server.root / remote_of(f"{day}/SHA256SUMS")


def manifest_puts(server: WatchedServer) -> int:
    return len([arg for arg in server.faults.commands("STOR") if "SHA256SUMS" in arg])


def killed_at_its_manifest(server: WatchedServer, outbox: Path, tmp_path: Path, start_uploader) -> dict[str, bytes]:  # noqa: F811
    """A `run --once` that delivered two recordings of DAY, SIGKILLed (a power cut) when its manifest's STOR reached
    the server: the files are on the server and gone from the outbox, their lines only in the day's journal."""
    contents = recordings(outbox, DAY)
    wire = server.watch.arm("STOR", "SHA256SUMS")  # the server stops dead there; the STOR never runs
    killed = start_uploader(field_env(server, outbox, tmp_path), "run", "--once")
    try:
        assert wire.hit.wait(30), killed.output()
        wait_until(lambda: outbox_files(outbox) == [], timeout=10)
        killed.kill()
    finally:
        wire.release.set()
    assert not manifest_on(server, DAY).exists()
    assert [text.count("\n") for text in journals(outbox).values()] == [2]
    return contents


def test_once_on_an_empty_outbox_puts_up_the_manifest_a_killed_run_left(link_server, outbox, tmp_path, start_uploader):  # noqa: F811
    contents = killed_at_its_manifest(link_server, outbox, tmp_path, start_uploader)
    done = run_cli(field_env(link_server, outbox, tmp_path), "run", "--once", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "0 files to deliver" in done.stderr, done.stderr
    assert manifest_on(link_server, DAY).read_text() == manifest_text(contents), done.stderr
    assert journals(outbox) == {}  # read back from the server intact, then removed
    assert error_lines(done.stderr) == [], done.stderr
    puts = manifest_puts(link_server)
    again = run_cli(field_env(link_server, outbox, tmp_path), "run", "--once", timeout=60)  # nothing pending now
    assert again.returncode == 0, again.stderr
    assert manifest_puts(link_server) == puts and "SHA256SUMS" not in again.stderr, again.stderr
    assert manifest_on(link_server, DAY).read_text() == manifest_text(contents)


@pytest.mark.parametrize(
    "refusal",
    [
        ("STOR", "SHA256SUMS", "451 Local error in processing."),
        ("RNFR", "SHA256SUMS", "450 File busy, try later."),
    ],
    ids=["store", "rename"],
)
def test_once_retries_a_manifest_the_server_refused_once_within_the_run(refusal, link_server, outbox, tmp_path):
    contents = recordings(outbox, DAY)
    link_server.faults.refuse_once_for.append(refusal)
    done = run_cli(field_env(link_server, outbox, tmp_path), "run", "--once", timeout=60)
    assert link_server.faults.refuse_once_for == [], "the refusal was never met: the scenario did not happen"
    assert done.returncode == 0, done.stderr
    assert manifest_on(link_server, DAY).read_text() == manifest_text(contents), done.stderr
    assert journals(outbox) == {} and outbox_files(outbox) == []
    assert error_lines(done.stderr) == [], done.stderr
    assert refusal[2] in done.stderr  # the failed attempt is in the log, the retry put it up


def test_once_names_a_manifest_the_server_always_refuses_keeps_its_journal_and_exits_1(link_server, outbox, tmp_path):
    contents = recordings(outbox, DAY)
    link_server.faults.deny_stor = ("SHA256SUMS",)
    env = field_env(link_server, outbox, tmp_path)
    done = run_cli(env, "run", "--once", "--max-retries", "2", timeout=60)
    assert done.returncode == 1, done.stderr
    [line] = error_lines(done.stderr)
    day = f"/data/rpi4-test/{DAY}"
    assert f"the manifest {day}/SHA256SUMS did not go up after 3 attempt(s) (" in line, line
    assert "550 Permission denied by the test server." in line and "its journal stays in" in line, line
    # The first attempt and two retries, like a file's (each put stores twice: a 550 makes the folders and tries
    # again); nothing lost: the files are on the server, their lines kept.
    assert manifest_puts(link_server) == 3 * 2
    assert not manifest_on(link_server, DAY).exists()
    assert outbox_files(outbox) == []
    [journal] = journals(outbox).values()
    for name, data in contents.items():
        assert f"{hashlib.sha256(data).hexdigest()} {len(data)} {name}\n" in journal
