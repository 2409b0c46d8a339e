"""Round trips per file, counted by a server that releases its replies only when the client waits for them.

A station's link costs a round trip each time the client stops for an answer; `LockstepHandler`
counts those stops (see tests/ftp/lockstep.py), so these tests assert exact numbers, not timings.
"""

from __future__ import annotations

import hashlib
import threading

import pytest

from operators.model import UploadJob
from pipeline.ftp.errors import ConnectionLost, PermanentFailure, SessionFailure, TransientFailure
from pipeline.ftp.session import UploadSession
from pipeline.sink.manifest import Manifests
from pipeline.sink.model import SinkGaveUp, UploadResult
from pipeline.sink.policy import UploadPolicy
from pipeline.sink.workers import Sink
from tests.ftp.lockstep import LockstepHandler, Waits
from tests.ftp_faults import Faults
from tests.helpers import params_for, wait_until, write

FILES = 3


def upload_queue(session: UploadSession, outbox, names: list[str], **options: object) -> list:
    """Upload one after another, each saying whether another follows (as the sink does with a queue)."""
    reports = []
    for index, name in enumerate(names):
        more = index < len(names) - 1
        size = (outbox / name).stat().st_size
        reports.append(session.upload(str(outbox / name), f"day/{name}", size, next_upload=lambda m=more: m, **options))
    return reports


@pytest.mark.parametrize("guarded", [False, True])
def test_a_small_file_costs_two_round_trips_on_a_persistent_session(
    make_server, ftp_root, outbox, credentials, guarded
):
    waits = Waits()
    contents = {f"f{i}.wav": write(outbox / f"f{i}.wav", 4096 + i) for i in range(FILES)}
    server = make_server(LockstepHandler, faults=waits)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            (ftp_root / "upload/day").mkdir(parents=True)  # an existing folder: the guard asks SIZE in STOR's flight
            upload_queue(session, outbox, list(contents), **({"may_replace": lambda n: True} if guarded else {}))
    finally:
        server.stop()
    assert waits.per_transfer() == [2] * (FILES - 1), waits.journal
    assert len(waits.commands("SIZE")) == FILES * (2 if guarded else 1)  # the guard's SIZE rides in STOR's flight
    assert all((ftp_root / "upload/day" / name).read_bytes() == data for name, data in contents.items())


def test_the_servers_hash_rides_in_the_renames_flight(make_server, ftp_root, outbox, credentials):
    waits = Waits()
    contents = {f"f{i}.wav": write(outbox / f"f{i}.wav", 4096 + i) for i in range(FILES)}
    server = make_server(LockstepHandler, faults=waits, hash_command=True)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            assert session.check == "hash"
            reports = upload_queue(session, outbox, list(contents))
    finally:
        server.stop()
    assert waits.per_transfer() == [2] * (FILES - 1), waits.journal
    for report, data in zip(reports, contents.values(), strict=True):
        assert report.verified_by == "hash" and report.sha256 == hashlib.sha256(data).hexdigest()
    assert waits.commands("OPTS") == ["HASH SHA-256"]
    assert waits.commands("HASH") == [f"/upload/day/{name}" for name in contents]


# --- the HASH's reply in the rename's flight, when the rename is refused


def test_a_refused_rnfr_never_takes_the_old_files_hash_and_the_replies_stay_in_step(
    make_server, ftp_root, outbox, credentials
):
    faults = Faults(refuse={"RNFR": "553 Renaming not allowed."})
    (ftp_root / "upload").mkdir()
    (ftp_root / "upload/a.wav").write_bytes(b"an older copy")
    data = write(outbox / "a.wav", 3000)
    server = make_server(faults=faults, hash_command=True)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            with pytest.raises(PermanentFailure, match="rename refused: 553") as refused:
                session.upload(str(outbox / "a.wav"), "a.wav", 3000, next_upload=lambda: True)
            assert refused.value.command == "RNFR"
            # Every reply of that flight was read: the next answers are the next commands'.
            assert session.remote_size("a.wav") == len(b"an older copy")
            assert session.noop().startswith("200")
    finally:
        server.stop()
    flight = [cmd for cmd, _ in faults.journal if cmd in ("RNFR", "RNTO", "SIZE", "OPTS", "HASH", "EPSV")]
    assert flight[-7:] == ["RNFR", "RNTO", "SIZE", "OPTS", "HASH", "EPSV", "SIZE"]
    assert (ftp_root / "upload/.a.wav.part").read_bytes() == data
    assert (ftp_root / "upload/a.wav").read_bytes() == b"an older copy"


def test_a_rename_done_again_after_a_refused_rnto_asks_the_hash_of_the_new_copy(
    make_server, ftp_root, outbox, credentials
):
    faults = Faults(rnto_no_replace=True)
    (ftp_root / "upload").mkdir()
    (ftp_root / "upload/a.wav").write_bytes(b"an older copy")
    data = write(outbox / "a.wav", 3000)
    server = make_server(faults=faults, hash_command=True)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            report = session.upload(str(outbox / "a.wav"), "a.wav", 3000)
    finally:
        server.stop()
    # The flight's HASH named the older copy (RNTO refused): asked again after DELE, RNFR, RNTO.
    assert faults.commands("HASH") == ["/upload/a.wav", "/upload/a.wav"]
    assert faults.commands("DELE") == ["/upload/a.wav"]
    assert report.verified_by == "hash" and report.sha256 == hashlib.sha256(data).hexdigest()
    assert (ftp_root / "upload/a.wav").read_bytes() == data


# --- folders


def test_a_new_days_folders_cost_one_wait(make_server, ftp_root, credentials):
    """A new date and sensor under a remote root that does not exist yet: one flight of MKDs and a CWD."""
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            mark = len(waits.journal)
            assert session.make_remote_directories("st/2024-05-01/audio") is True
            made = waits.journal[mark:]
            assert session.make_remote_directories("st/2024-05-01/audio") is False  # cached: no command
            assert waits.journal[mark:] == made
    finally:
        server.stop()
    assert [entry for entry in made if entry[0] == "WAIT"] == [("WAIT", "")], made
    assert (ftp_root / "upload/st/2024-05-01/audio").is_dir()


@pytest.mark.parametrize("exists", [False, True])
def test_the_first_file_into_a_new_days_folder_costs_three_waits(make_server, ftp_root, outbox, credentials, exists):
    """The session's first upload: the folders' flight asks the data port too (no EPSV alone), then the STOR
    with its bytes, then the rename: 3 waits (4 when the port had a flight of its own), whether another
    session made the folders already or not."""
    if exists:
        (ftp_root / "upload/st/2024-05-01/audio").mkdir(parents=True)
    data = write(outbox / "a.wav", 4096)
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            mark = len(waits.journal)
            session.upload(str(outbox / "a.wav"), "st/2024-05-01/audio/a.wav", 4096, may_replace=lambda n: True)
            used = waits.journal[mark:]
    finally:
        server.stop()
    assert [entry for entry in used if entry[0] == "WAIT"] == [("WAIT", "")] * 3, used
    assert (ftp_root / "upload/st/2024-05-01/audio/a.wav").read_bytes() == data


def test_a_chain_another_session_made_costs_one_wait_and_is_not_fresh(make_server, ftp_root, credentials):
    """Every level exists already (550 to each MKD): still one wait, and the folder is not reported new."""
    (ftp_root / "upload/st/2024-05-01/audio").mkdir(parents=True)
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            mark = len(waits.journal)
            assert session.make_remote_directories("st/2024-05-01/audio") is False
            made = waits.journal[mark:]
    finally:
        server.stop()
    assert [entry for entry in made if entry[0] == "WAIT"] == [("WAIT", "")], made


# --- the login


@pytest.mark.parametrize(("pipelining", "waits_expected"), [(True, 2), (False, 5)])
def test_a_login_costs_the_welcome_and_one_flight(make_server, ftp_root, credentials, pipelining, waits_expected):
    """Welcome, then USER, PASS, TYPE I and FEAT together; one command at a time without pipelining."""
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits, hash_command=True)
    try:
        with UploadSession(params_for(server, credentials, pipelining=pipelining)) as session:
            assert session.check == "hash"  # FEAT's reply read from the login's flight
            logged_in = list(waits.journal)
    finally:
        server.stop()
    assert [cmd for cmd, _ in logged_in if cmd == "WAIT"] == ["WAIT"] * waits_expected, logged_in
    assert [cmd for cmd, _ in logged_in if cmd != "WAIT"] == ["USER", "PASS", "TYPE", "FEAT"]


def test_the_first_files_folders_ride_in_the_logins_flight(make_server, ftp_root, outbox, credentials):
    """A session that knows its first file's folder when it logs in (a sink worker that took a job first):
    welcome, then login + MKDs + CWD + EPSV in one flight, then STOR, then the rename: 4 waits from the
    connect to the verified file, not 5 (the folders' flight after the login's)."""
    data = write(outbox / "a.wav", 4096)
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    try:
        session = UploadSession(params_for(server, credentials))
        session.first_folder("st/2024-05-01/audio")
        with session:
            session.upload(str(outbox / "a.wav"), "st/2024-05-01/audio/a.wav", 4096, may_replace=lambda n: True)
            used = list(waits.journal)
    finally:
        server.stop()
    assert [cmd for cmd, _ in used].count("WAIT") == 4, used
    flight = [cmd for cmd, _ in used[used.index(("USER", credentials.username)) : used.index(("WAIT", ""), 2)]]
    assert flight == ["USER", "PASS", "TYPE", "FEAT", "MKD", "MKD", "MKD", "MKD", "CWD", "EPSV"], used
    # The folder is new (this login's flight made it): no overwrite guard's SIZE; the rename's check alone.
    assert waits.commands("SIZE") == ["/upload/st/2024-05-01/audio/a.wav"]
    assert (ftp_root / "upload/st/2024-05-01/audio/a.wav").read_bytes() == data


def test_a_refused_login_with_the_folders_in_its_flight_makes_nothing(make_server, ftp_root, credentials):
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    params = params_for(server, credentials, password="wrong-" + credentials.password)
    session = UploadSession(params)
    session.first_folder("st/2024-05-01/audio")
    try:
        with pytest.raises(SessionFailure, match="530"):
            session.connect()
    finally:
        server.stop()
    assert not session.connected and not (ftp_root / "upload").exists()
    assert [cmd for cmd, _ in waits.journal].count("PASS") == 1


def test_a_data_port_refused_in_the_logins_flight_is_the_uploads_to_meet_not_a_failed_connect(
    make_server, ftp_root, outbox, credentials
):
    """The first file's port, asked in the login's flight, refused (425: no passive port free): the login
    succeeded, so the session stays connected and in step; the upload asks for its port again and fails
    as a transfer does (retried per file), where a failed connect would leave a logged-in connection behind
    and count against reaching the server."""
    write(outbox / "a.wav", 4096)
    server = make_server(faults=Faults(refuse={"EPSV": "425 Can't open passive connection."}))
    session = UploadSession(params_for(server, credentials))
    session.first_folder("st/2024-05-01/audio")
    try:
        session.connect()
        assert session.connected
        with pytest.raises(TransientFailure, match="425"):
            session.upload(str(outbox / "a.wav"), "st/2024-05-01/audio/a.wav", 4096)
        assert session.connected  # in step: the next command's reply is its own
        session.connection.command("NOOP")
    finally:
        session.close()
        server.stop()
    assert (ftp_root / "upload/st/2024-05-01/audio").is_dir()


def test_a_421_in_the_logins_flight_fails_the_connect_and_leaves_no_connection(make_server, credentials):
    server = make_server(faults=Faults(refuse={"EPSV": "421 Closing the session."}))
    session = UploadSession(params_for(server, credentials))
    session.first_folder("st/2024-05-01/audio")
    try:
        with pytest.raises(ConnectionLost, match="421"):
            session.connect()
        assert not session.connected
    finally:
        session.close()
        server.stop()


def test_a_wrong_password_in_the_logins_flight_is_refused_as_alone(make_server, ftp_root, credentials):
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    params = params_for(server, credentials, password="wrong-" + credentials.password)
    try:
        with pytest.raises(SessionFailure, match="530") as caught:
            UploadSession(params).connect()
    finally:
        server.stop()
    assert params.password not in str(caught.value)
    assert [cmd for cmd, _ in waits.journal if cmd == "WAIT"] == ["WAIT"] * 2


# --- the sink's sessions at the start of `run --once`


class SessionsHandler(LockstepHandler):
    """`LockstepHandler` that also writes, in one list for all sessions, (session, event): "+" its connect,
    "WAIT" each release of its held replies, and each command's verb."""

    events: list[tuple[int, str]]
    _lock = threading.Lock()

    def on_connect(self) -> None:
        self.faults.touch()  # a client connecting is not quiet
        with self._lock:
            self.session = sum(1 for _, event in self.events if event == "+")
            self.events.append((self.session, "+"))
        super().on_connect()

    def pre_process_command(self, line: str, cmd: str, arg: str) -> None:
        self.events.append((self.session, cmd))
        super().pre_process_command(line, cmd, arg)

    def _release(self) -> None:
        held = bool(self.__dict__.get("_held")) and not self._closed
        super()._release()
        if held and not self.__dict__.get("_held"):
            self.events.append((self.session, "WAIT"))


def run_once_sink(server, credentials, outbox, files: int, **changes: object) -> list[UploadResult | SinkGaveUp]:
    """A `run --once` sink (2 sessions, connect_attempts) with `files` jobs ready before it starts."""
    results: list[UploadResult | SinkGaveUp] = []
    policy = UploadPolicy(connections=2, retry_base=0.05, retry_max=0.5, connect_attempts=1)
    sink = Sink(params_for(server, credentials, **changes), policy, results.append)
    for index in range(files):
        data = write(outbox / f"f{index}.wav", 4096)
        path = outbox / f"f{index}.wav"
        sink.put(UploadJob(str(path), f"/upload/day/f{index}.wav", len(data), path.stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: len(results) >= files or any(isinstance(r, SinkGaveUp) for r in results), timeout=30)
    finally:
        sink.stop(5)
    return results


def test_the_second_session_has_its_welcome_when_the_first_login_succeeds(make_server, ftp_root, outbox, credentials):
    """`run --once` lets one session take the login first (a refused password counts once); once the server
    greeted it, the others open their connections while it logs in and send their credentials right after
    its login's answer: the first has waited twice (welcome, login) when the second's USER comes, not three
    times or more (the second connecting only then, and waiting a round trip for its welcome while the first
    made its folders)."""
    events: list[tuple[int, str]] = []
    server = make_server(SessionsHandler, faults=Waits(quiet=0.4), events=events)  # a busy machine's wake-ups
    try:
        results = run_once_sink(server, credentials, outbox, files=2)
    finally:
        server.stop()
    assert len(results) == 2 and all(isinstance(r, UploadResult) and r.outcome.value == "delivered" for r in results)
    first, second = (session for session, event in events if event == "USER")  # in the order they logged in
    second_user = events.index((second, "USER"))
    assert [event for session, event in events[:second_user] if session == first].count("WAIT") == 2, events
    first_waits = [index for index, entry in enumerate(events) if entry == (first, "WAIT")]
    assert (second, "+") in events[first_waits[0] : first_waits[1]], events  # opened while the first logged in
    # The second took its job before it logged in: that job's folders and data port rode in its login's flight.
    second_stor = events.index((second, "STOR"))
    assert [e for s, e in events[second_user:second_stor] if s == second].count("WAIT") == 1, events
    assert [event for _, event in events].count("PASS") == 2


def test_a_refused_first_login_is_the_only_one_and_the_other_session_sends_nothing(
    make_server, ftp_root, outbox, credentials
):
    events: list[tuple[int, str]] = []
    server = make_server(SessionsHandler, faults=Waits(), events=events)
    try:
        results = run_once_sink(server, credentials, outbox, files=4, password="wrong-" + credentials.password)
    finally:
        server.stop()
    assert [type(r) for r in results] == [SinkGaveUp]
    assert [event for _, event in events if event in ("USER", "PASS")] == ["USER", "PASS"], events
    [(only, _)] = [entry for entry in events if entry[1] == "USER"]
    assert [session for session, event in events if event not in ("+", "WAIT")] == [only] * 4, events
    assert all(path.exists() for path in outbox.iterdir())


# --- the day's manifest


@pytest.mark.parametrize(("then_read", "expected"), [(True, 3), (False, 4)])
def test_a_manifest_read_put_and_read_back_costs_three_waits(make_server, ftp_root, credentials, then_read, expected):
    """The sink's manifest at the end of a day: read (missing), put, read back. [SIZE, EPSV], STOR,
    [RNFR, RNTO, SIZE, EPSV, RETR]: the read-back rides in the rename's flight (its data connection opened
    once the EPSV is answered, its closing 226 left for the next reply read); no TYPE I, no second SIZE.
    Put without saying it is read next (`then_read`), the read-back's RETR is a round trip of its own."""
    (ftp_root / "upload/st/day").mkdir(parents=True)
    data = b"0" * 64 + b"  a.wav\n"
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    try:
        with UploadSession(params_for(server, credentials)) as session:
            session.make_remote_directories("st/day")
            mark = len(waits.journal)
            assert session.get_small("st/day/SHA256SUMS") is None
            session.put_small("st/day/SHA256SUMS", data, then_read=then_read)
            assert session.get_small("st/day/SHA256SUMS") == data
            used = waits.journal[mark:]
            assert session.noop().startswith("200")  # the read-back's 226, left for later, was read first
    finally:
        server.stop()
    assert [cmd for cmd, _ in used if cmd == "WAIT"] == ["WAIT"] * expected, used
    assert [cmd for cmd, _ in used if cmd != "WAIT"] == ["SIZE", "EPSV", "STOR", "RNFR", "RNTO", "SIZE", "EPSV", "RETR"]
    assert (ftp_root / "upload/st/day/SHA256SUMS").read_bytes() == data


MANIFEST = "/upload/st/2024-05-01/SHA256SUMS"


def test_a_new_days_manifest_costs_two_waits_after_its_last_file(make_server, ftp_root, outbox, credentials, tmp_path):
    """A past day's files, then its manifest, as at the end of `run --once`. The day's first delivery asked in
    its rename's flight whether the server has a manifest (no wait of its own: it has none), and the last
    one asked the put's data port in its own, so after the last file's rename the manifest costs STOR (the
    overwrite guard's SIZE in its flight) and the rename's flight with the read-back's RETR: 2 waits, not 4
    (a [SIZE, EPSV] flight to read it first, the read-back's RETR after the rename's answer)."""
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    results: list[UploadResult | SinkGaveUp] = []
    policy = UploadPolicy(connections=1, retry_base=0.05, retry_max=0.5)
    sink = Sink(params_for(server, credentials), policy, results.append)
    sink.manifests = Manifests(str(tmp_path / "journals"), interval=3600.0)
    names = [f"st@2024-05-01@10-00-0{i}.wav" for i in range(FILES)]
    for name in names:
        data = write(outbox / name, 4096)
        path = outbox / name
        sink.put(UploadJob(str(path), f"/upload/st/2024-05-01/audio/{name}", len(data), path.stat().st_mtime_ns))
    sink.start()
    try:
        wait_until(lambda: ("RETR", MANIFEST) in waits.journal, timeout=30)
    finally:
        sink.stop(5)
    server.stop()
    journal = waits.journal
    last_rename = max(i for i, (cmd, arg) in enumerate(journal) if cmd == "RNFR" and "SHA256SUMS" not in arg)
    tail = journal[last_rename : journal.index(("QUIT", ""))]
    assert [cmd for cmd, _ in tail].count("WAIT") == 1 + 2, tail  # the last file's rename, then the manifest's 2
    probe = journal.index(("SIZE", MANIFEST))  # asked in the first file's rename's flight
    first_rename = next(i for i, (cmd, _) in enumerate(journal) if cmd == "RNFR")
    assert waits.flights[probe] == waits.flights[first_rename], journal
    assert [arg for cmd, arg in journal if cmd == "RETR"] == [MANIFEST]  # the read-back alone: nothing read first
    lines = (ftp_root / MANIFEST.lstrip("/")).read_text().splitlines()
    assert [line.split()[-1] for line in lines if not line.startswith("#")] == [f"audio/{name}" for name in names]
    assert len(results) == FILES and not list(outbox.iterdir())


def test_a_manifest_that_appeared_after_the_server_said_it_had_none_is_merged(
    make_server, ftp_root, outbox, credentials, tmp_path
):
    """The put of a manifest the server said it did not have refuses to replace one (its guard): one that
    appeared since (another uploader, a person) is read and merged, its lines kept."""
    faults = Faults()
    server = make_server(faults=faults)
    day = ftp_root / "upload/st/2024-05-01"
    (day / "audio").mkdir(parents=True)
    manifests = Manifests(str(tmp_path / "journals"), interval=3600.0)
    remote = "/upload/st/2024-05-01/audio/a.wav"
    assert manifests.probe_for(remote) == MANIFEST and manifests.probe_for(remote) is None  # asked once
    manifests.probed(remote, exists=False)
    manifests.record(remote, "a" * 64, 10)
    (day / "SHA256SUMS").write_text("# the lab's\n" + "b" * 64 + "  audio/other.wav\n")
    with UploadSession(params_for(server, credentials)) as session:
        assert manifests.flush(session, list, idle=True) == "/upload/st/2024-05-01"
    assert (day / "SHA256SUMS").read_text() == (
        "# the lab's\n# size 10 audio/a.wav\n" + "a" * 64 + "  audio/a.wav\n" + "b" * 64 + "  audio/other.wav\n"
    )
    assert faults.commands("DELE") == ["/upload/st/2024-05-01/.SHA256SUMS.part"]  # the refused put's temporary


def test_a_session_closed_at_the_end_of_a_run_waits_for_no_reply(make_server, credentials):
    """The sink's sessions at its stop: QUIT, then the connection closed without waiting for the 221 (one round
    trip less before the process exits). Any other close (a new session may follow at once) waits for it."""
    waits = Waits()
    server = make_server(LockstepHandler, faults=waits)
    try:
        leaving, other = UploadSession(params_for(server, credentials)), UploadSession(params_for(server, credentials))
        leaving.connect()
        other.connect()
        mark = len(waits.journal)
        leaving.close(wait_reply=False)
        other.close()  # returns once its 221 came: the client was quiet long enough for any held reply to go
    finally:
        server.stop()
    assert waits.journal[mark:] == [("QUIT", ""), ("QUIT", ""), ("WAIT", "")], waits.journal[mark:]
