"""One test per item of the original API reference (../shared/reference/beemon-uploader-api.txt),
each calling it the way the reference shows, against the real loopback server.

Only the import differs from code written for the original (`from pipeline import ...` instead of
`from uploader import ...`). docs/orchestrator.rst maps each item to these tests.
"""

from __future__ import annotations

import ftplib
import io
import os
import queue
import shutil
import threading
import time
from pathlib import Path

import pytest
from watchdog.observers import Observer

from pipeline import Uploader, UploadHandler, UploadHelper, UploadSession
from tests.conformance.conftest import DAY, REMOTE_ROOT, STATION, Station
from tests.helpers import wait_until, write_file


def arrived(station: Station, *paths: Path, sensor: str = "audio") -> bool:
    return all(station.remote(sensor, p.name).is_file() and not p.exists() for p in paths)


class RunningUploader:
    """`Uploader.run()` in a thread of this process, as `beemon-uploader run` drives it."""

    def __init__(self, uploader: Uploader, commands: queue.Queue) -> None:
        self.uploader, self.commands = uploader, commands
        self.thread = threading.Thread(target=uploader.run, daemon=True)

    def __enter__(self) -> RunningUploader:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.commands.put("stop")
        self.thread.join(30)
        assert not self.thread.is_alive(), "run() did not return after 'stop'"


# --- class uploader.Uploader(command_queue: Queue, config: Config | None)


def test_uploader_init_takes_the_command_queue_and_the_orchestrators_config(station: Station):
    uploader = Uploader(queue.Queue(), station.parser())
    assert uploader.options.ftp.host == "127.0.0.1"
    assert uploader.options.ftp.port == station.server.port
    assert uploader.options.ftp.remote_root == REMOTE_ROOT
    assert uploader.options.outbox == str(station.outbox)
    assert not uploader.options.embedded


def test_uploader_init_with_config_none_reads_the_beemon_config_ini(station: Station):
    uploader = Uploader(queue.Queue(), None)
    assert (uploader.options.ftp.host, uploader.options.ftp.port) == ("127.0.0.1", station.server.port)
    assert uploader.options.ftp.username == station.credentials.username


def test_uploader_handle_command_returns_an_optional_error(station: Station):
    uploader = Uploader(queue.Queue(), None)
    assert (
        uploader._handle_command("pause")
        == "unknown command 'pause': the uploader understands only 'stop' and 'reload'"
    )
    assert uploader._handle_command("stop") is None


def test_uploader_run_uploads_live_files_until_stop(station: Station):
    commands: queue.Queue[str] = queue.Queue()
    with RunningUploader(Uploader(commands, None), commands) as running:
        wait_until(lambda: running.uploader.pipeline is not None, timeout=20)  # watching: a live file follows
        live = station.recording("audio", "10-00-00", "wav", b"live" * 1000)
        wait_until(lambda: arrived(station, live), timeout=20)
    assert station.remote("audio", live.name).read_bytes() == b"live" * 1000


def test_uploader_populate_secondary_queue_sends_the_backlog_with_final_for_csv(station: Station):
    """Files left from an earlier day go on start-up; `X.csv.final` is sent (as X.csv) instead of X.csv."""
    old = station.recording("audio", "09-00-00", "wav", b"from yesterday")
    csv = write_file(station.outbox / "temp" / DAY / f"{STATION}@{DAY}.csv", b"t,1\n")
    final = write_file(station.outbox / "temp" / DAY / f"{STATION}@{DAY}.csv.final", b"t,1\nt,2\n")
    past = time.time() - 60
    for path in (old, csv, final):
        os.utime(path, (past, past))
    commands: queue.Queue[str] = queue.Queue()
    with RunningUploader(Uploader(commands, None), commands):
        wait_until(lambda: arrived(station, old) and not final.exists() and not csv.exists(), timeout=20)
    assert station.remote("audio", old.name).read_bytes() == b"from yesterday"
    assert station.remote("temp", csv.name).read_bytes() == b"t,1\nt,2\n"


def test_uploader_populate_secondary_queue_called_directly_counts_the_files(station: Station):
    station.recording("audio", "08-00-00", "wav", b"x")
    os.utime(station.outbox / "audio" / DAY / f"{STATION}@{DAY}@08-00-00.wav", (time.time() - 60,) * 2)
    uploader = Uploader(queue.Queue(), None)
    uploader._helper = UploadHelper(uploader.options.ftp, uploader.options.policy)  # as run() holds it
    try:
        assert uploader.populate_secondary_queue() == 1
        assert uploader._helper.backfill_queued() == 1
    finally:
        uploader._helper.stop()


def test_uploader_start_runs_it_as_a_process_and_stop_command_ends_it(station: Station):
    import multiprocessing

    commands = multiprocessing.Queue()
    uploader = Uploader(commands, None)
    uploader.start()
    try:
        live = station.recording("video", "11-00-00", "h264", b"frames" * 500)
        wait_until(lambda: arrived(station, live, sensor="video"), timeout=30)
        commands.put("stop")
        uploader.join(30)
    finally:
        if uploader.is_alive():
            uploader.terminate()
    assert uploader.exitcode == 0


def test_uploader_stop_ends_run(station: Station):
    uploader = Uploader(queue.Queue(), None)
    thread = threading.Thread(target=uploader.run, daemon=True)
    thread.start()
    time.sleep(0.3)
    uploader.stop()
    thread.join(30)
    assert not thread.is_alive()


# --- class uploader.UploadHelper(upload_queue_polling_interval_seconds: float | None = 1.0)


@pytest.mark.parametrize(
    "construct",
    [
        lambda: UploadHelper(),
        lambda: UploadHelper(1.0),
        lambda: UploadHelper(upload_queue_polling_interval_seconds=1.0),
    ],
    ids=["no-arguments", "positional", "keyword"],
)
def test_upload_helper_init_forms_then_queue_upload_run_and_stop(station: Station, construct):
    helper = construct()
    assert helper.upload_queue_polling_interval_seconds in (None, 1.0)
    source = station.recording("audio", "12-00-00", "wav", b"queued the original way")
    dest = f"{REMOTE_ROOT}/{STATION}/{DAY}/audio/{source.name}"
    helper.start()  # run() in the child
    try:
        helper.queue_upload(str(source), dest)
        wait_until(lambda: station.on_server(dest).is_file() and not source.exists(), timeout=20)
    finally:
        helper.stop()
    assert not helper.is_alive()
    assert station.on_server(dest).read_bytes() == b"queued the original way"


def test_upload_helper_polling_interval_must_be_a_positive_number(station: Station):
    with pytest.raises(ValueError, match="must be positive"):
        UploadHelper(0)
    with pytest.raises(TypeError, match="must be a number"):
        UploadHelper("soon")  # type: ignore[arg-type]


@pytest.mark.parametrize("slash", ["", "/"], ids=["folder", "folder-slash"])
def test_upload_helper_queue_upload_into_an_existing_remote_folder(station: Station, slash: str):
    folder = f"{REMOTE_ROOT}/{STATION}/{DAY}/audio"
    station.on_server(folder).mkdir(parents=True)
    source = station.recording("audio", "13-00-00", "wav", b"into the folder")
    helper = UploadHelper()
    helper.start()
    try:
        helper.queue_upload(str(source), folder + slash, priority=1)
        wait_until(lambda: not source.exists(), timeout=20)
    finally:
        helper.stop()
    assert station.on_server(f"{folder}/{source.name}").read_bytes() == b"into the folder"
    assert [p.name for p in station.on_server(folder).iterdir()] == [source.name]  # no .audio.part beside it


def test_upload_helper_queue_upload_priority_picks_the_queue(station: Station):
    helper = UploadHelper()  # not started: the jobs stay on their queues
    try:
        source = station.recording("audio", "13-30-00", "wav", b"x")
        helper.queue_upload(str(source), "a/", priority=5)
        helper.queue_upload(str(source), "b/", priority=None)
        assert helper.backfill_queued() == 1
    finally:
        helper.stop()


def test_upload_helper_upload_file_returns_none_or_an_error(station: Station):
    helper = UploadHelper()
    source = station.recording("audio", "14-00-00", "wav", b"sent now")
    dest = f"{REMOTE_ROOT}/{STATION}/{DAY}/audio/{source.name}"
    assert helper.upload_file(str(source), dest) is None
    assert station.on_server(dest).read_bytes() == b"sent now"
    assert source.exists()  # removing it is remove_local_file's job
    error = helper.upload_file(str(station.outbox / "missing.wav"), dest)
    assert isinstance(error, str) and "missing.wav" in error
    station.server.stop()
    error = helper.upload_file(str(source), dest)
    assert isinstance(error, str) and "refused" in error and station.credentials.password not in error


def test_upload_helper_make_directory_takes_an_ftplib_session(station: Station):
    with UploadSession(
        station.credentials.username, station.credentials.password, "127.0.0.1", station.server.port, REMOTE_ROOT
    ) as session:
        assert UploadHelper.make_directory(session, "made") is None
        assert UploadHelper.make_directory(session, "made") is None  # existing: not an error
        session.storbinary("STOR plain-file", io.BytesIO(b"x"))
        error = UploadHelper.make_directory(session, "plain-file/below")
    assert station.on_server(f"{REMOTE_ROOT}/made").is_dir()
    assert isinstance(error, str) and "plain-file/below" in error


def test_upload_helper_make_remote_directories_creates_station_date_and_sensors(station: Station):
    (station.outbox / "humidity").mkdir()
    helper = UploadHelper()
    with UploadSession(
        station.credentials.username, station.credentials.password, "127.0.0.1", station.server.port, "/"
    ) as session:
        assert helper.make_remote_directories(session, DAY) is None
        assert session.pwd() == "/"  # the session's folder is left as it was
    day = station.on_server(f"{REMOTE_ROOT}/{STATION}/{DAY}")
    assert sorted(p.name for p in day.iterdir()) == ["audio", "humidity", "temp", "video"]


def test_upload_helper_remove_local_file_takes_the_csv_with_its_final(station: Station):
    csv = write_file(station.outbox / f"{STATION}@{DAY}.csv", b"t,1\n")
    final = write_file(station.outbox / f"{STATION}@{DAY}.csv.final", b"t,1\nt,2\n")
    wav = station.recording("audio", "15-00-00", "wav", b"x")
    UploadHelper.remove_local_file(str(csv))
    assert csv.exists()  # a bare .csv is never removed
    UploadHelper.remove_local_file(str(final))
    UploadHelper.remove_local_file(str(wav))
    assert not csv.exists() and not final.exists() and not wav.exists()


# --- class uploader.UploadSession(username, password, host_ip, host_port, remote_directory)


@pytest.mark.parametrize("by_keyword", [False, True], ids=["positional", "keyword"])
def test_upload_session_is_an_ftp_session_in_the_remote_directory(station: Station, by_keyword: bool):
    user, password, port = station.credentials.username, station.credentials.password, station.server.port
    remote_directory = f"{REMOTE_ROOT}/{STATION}/"
    if by_keyword:
        upload_session = UploadSession(
            username=user, password=password, host_ip="127.0.0.1", host_port=port, remote_directory=remote_directory
        )
    else:
        upload_session = UploadSession(user, password, "127.0.0.1", port, remote_directory)
    with upload_session as session:
        assert isinstance(session, ftplib.FTP)
        assert session.pwd() == remote_directory.rstrip("/")
        session.storbinary("STOR hello.txt", io.BytesIO(b"hello"))
        session.mkd("sub")
        session.cwd("sub")
        assert session.pwd() == f"{REMOTE_ROOT}/{STATION}/sub"
    assert station.on_server(f"{REMOTE_ROOT}/{STATION}/hello.txt").read_bytes() == b"hello"


# --- class uploader.UploadHandler(upload_helper: UploadHelper)


def test_upload_handler_on_closed_queues_onto_its_helper(station: Station):
    helper = UploadHelper()
    handler = UploadHandler(helper)
    observer = Observer()
    observer.schedule(handler, str(station.outbox), recursive=True)
    helper.start()
    observer.start()
    try:
        closed = station.recording("audio", "16-00-00", "wav", b"closed after writing")
        wait_until(lambda: arrived(station, closed), timeout=20)
    finally:
        observer.stop()
        observer.join()
        helper.stop()
    assert station.remote("audio", closed.name).read_bytes() == b"closed after writing"


def test_upload_handler_on_created_queues_a_file_moved_in_whole(station: Station, tmp_path: Path):
    """A file moved in from outside the watch gives Created only; a file created empty waits for Closed."""
    helper = UploadHelper()
    handler = UploadHandler(helper)
    observer = Observer()
    observer.schedule(handler, str(station.outbox), recursive=True)
    (station.outbox / "audio" / DAY).mkdir(parents=True)
    helper.start()
    observer.start()
    try:
        elsewhere = write_file(tmp_path / "elsewhere" / f"{STATION}@{DAY}@17-00-00.wav", b"moved in whole")
        moved = station.outbox / "audio" / DAY / elsewhere.name
        shutil.move(elsewhere, moved)
        writing = station.outbox / "audio" / DAY / f"{STATION}@{DAY}@17-01-00.wav"
        with writing.open("wb") as recorder:  # Created while open: nothing may be sent yet
            recorder.write(b"first half ")
            recorder.flush()
            wait_until(lambda: arrived(station, moved), timeout=20)
            assert not station.remote("audio", writing.name).exists()
            recorder.write(b"second half")
        wait_until(lambda: arrived(station, writing), timeout=20)
    finally:
        observer.stop()
        observer.join()
        helper.stop()
    assert station.remote("audio", moved.name).read_bytes() == b"moved in whole"
    assert station.remote("audio", writing.name).read_bytes() == b"first half second half"
