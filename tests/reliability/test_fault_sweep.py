"""The fault sweep (issue 11): an unexpected failure at every step of a delivery, one after the other,
against one running `beemon-uploader run`.

Server side (a real loopback server that misbehaves on cue; the client is the real ftplib): each command of a
delivery answered with a reply the protocol does not allow, or the connection dropped as it
arrives; the server gone at connect; the TLS handshake fed clear text. Local side: a file that
cannot be opened, a folder where the delivered file cannot be deleted. After each fault: the
process is alive and the next file still arrives, byte for byte; nothing is lost; no traceback.
"""

from __future__ import annotations

import os
from datetime import date, timedelta
from pathlib import Path

from tests.e2e.conftest import STATION, uploader_env
from tests.ftp_faults import Faults
from tests.helpers import wait_until
from tests.reliability.conftest import outbox_files, remote_of
from tests.reliability.test_security import tls_server
from tests.reliability.test_station_input import _without_file_permission_override

FIRST = date(2022, 7, 1)
OLD = 1_600_000_000
#: The commands of one delivery on a fresh session (MKD for a new date folder; pipelined: EPSV+STOR,
#: RNFR+RNTO+SIZE), and of a login.
DELIVERY = ("MKD", "EPSV", "STOR", "RNFR", "RNTO", "SIZE")
LOGIN = ("USER", "PASS", "TYPE")


class Sweep:
    """Writes one new file per step (a new date folder each, so every step makes folders) and checks it arrives."""

    def __init__(self, outbox: Path, server, run) -> None:
        self.outbox, self.server, self.run = outbox, server, run
        self.expected: dict[str, bytes] = {}
        self.step = 0

    def deliver(self, label: str, before=None, after=None) -> Path:
        day = (FIRST + timedelta(days=self.step)).isoformat()
        self.step += 1
        name = f"{STATION}@{day}@10-00-00.wav"
        path = self.outbox / "audio" / day / name
        content = b"RIFF " + label.encode() + os.urandom(40_000)
        if before is not None:
            before(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.utime(path, (OLD, OLD))
        self.expected[remote_of(f"{day}/audio/{name}")] = content
        if after is not None:
            after(path)
        else:
            self.check(label, path)
        return path

    def check(self, label: str, path: Path) -> None:
        wait_until(lambda: not path.exists(), timeout=30)
        files = self.server.files()
        assert {k: files.get(k) for k in self.expected} == self.expected, label
        output = self.run.output()
        assert self.run.alive(), (label, output)
        assert "Traceback" not in output and "Exception in thread" not in output, (label, output)


def test_a_fault_at_every_step_of_a_delivery_leaves_the_uploader_delivering(
    watched_server, outbox, tmp_path, start_uploader
):
    faults = Faults()
    server = watched_server(faults)
    env = uploader_env(server, outbox, tmp_path, BEEMON_FTP__CONNECTIONS="1", BEEMON_FTP__TIMEOUT_SECONDS="3")
    run = start_uploader(env, preexec=_without_file_permission_override())
    sweep = Sweep(outbox, server, run)
    sweep.deliver("before any fault")

    for command in DELIVERY:
        faults.once[command] = ["999 A reply no protocol allows."]
        sweep.deliver(f"{command} answered 999")
        faults.drop_once.append(command)
        sweep.deliver(f"connection dropped at {command}")
    for command in LOGIN:  # a session is opened again after a drop: its login meets the fault
        faults.drop_once.append("STOR")
        faults.once[command] = ["999 A reply no protocol allows."]
        sweep.deliver(f"{command} answered 999 after a drop")
        faults.drop_once += ["STOR", command]
        sweep.deliver(f"connection dropped at {command}")
    faults.cut_after_bytes, faults.cuts = 10_000, 1
    sweep.deliver("data connection cut")

    # Connect: the server is gone for a while, then back on the same port.
    server.stop()
    waiting = sweep.deliver("server down", after=lambda path: None)
    wait_until(lambda: "cannot reach" in run.output(), timeout=20)
    server.start_again()
    sweep.check("server back", waiting)

    # Local open: the file cannot be read; parked, then delivered once it changes.
    def lock(path: Path) -> None:
        path.chmod(0)

    locked = sweep.deliver("unreadable", after=lock)
    wait_until(lambda: f"cannot read {locked}" in run.output(), timeout=20)
    locked.chmod(0o644)
    os.utime(locked)  # it changes: the watcher reports it
    sweep.check("readable again", locked)

    # Local delete: the folder does not let the delivered file go; it stays, the next one goes.
    def read_only_folder(path: Path) -> None:
        path.parent.chmod(0o555)

    kept = sweep.deliver("cannot delete", after=read_only_folder)
    wait_until(lambda: remote_of(f"{kept.parent.name}/audio/{kept.name}") in server.files(), timeout=20)
    sweep.deliver("after a failed delete")
    assert kept.exists()
    kept.parent.chmod(0o755)

    assert not any(faults.once.values()) and faults.drop_once == [] and faults.cuts == 0  # every fault fired
    assert len([entry for entry in faults.journal if entry[0] == "DROP"]) == len(DELIVERY) + len(LOGIN) * 3
    assert run.stop() == 0
    files = server.files()
    assert {k: files.get(k) for k in sweep.expected} == sweep.expected
    assert outbox_files(outbox) == [str(kept.relative_to(outbox))]
    assert "Traceback" not in run.output()


def test_a_tls_handshake_fed_clear_text_and_a_refused_prot_leave_the_uploader_delivering(
    watched_server, tls_files, outbox, tmp_path, start_uploader
):
    server = tls_server(watched_server, tls_files)
    faults = server.faults
    env = uploader_env(
        server,
        outbox,
        tmp_path,
        BEEMON_FTP__TLS="explicit",
        BEEMON_FTP__CA_FILE=tls_files.ca_file,
        BEEMON_FTP__CONNECTIONS="1",
        BEEMON_FTP__TIMEOUT_SECONDS="3",
    )
    faults.once["AUTH"] = ["234 Proceed, but in clear text."]  # the client's handshake meets FTP replies
    run = start_uploader(env)
    sweep = Sweep(outbox, server, run)
    sweep.deliver("handshake fed clear text")
    faults.drop_once += ["STOR", "PROT"]
    sweep.deliver("connection dropped at PROT")
    faults.drop_once.append("STOR")
    faults.once["PBSZ"] = ["999 A reply no protocol allows."]
    sweep.deliver("PBSZ answered 999")
    assert not any(faults.once.values()) and faults.drop_once == []  # every fault fired
    assert run.stop() == 0
    assert "Traceback" not in run.output()
