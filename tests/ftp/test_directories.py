"""Remote folders made once per session, against a real pyftpdlib server on loopback."""

from __future__ import annotations

import shutil

from pipeline.ftp.session import UploadSession
from tests.ftp.support import after
from tests.ftp_faults import Faults
from tests.helpers import params_for, write


def test_folders_are_created_once_and_existing_ones_are_fine(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    ftp_server = make_server(faults=faults)
    (ftp_root / "upload/st/2024-05-01/audio").mkdir(parents=True)
    write(outbox / "x.wav", 100)
    journal = faults.journal
    with UploadSession(params_for(ftp_server, credentials)) as session:
        session.make_remote_directories("st/2024-05-01/audio")  # exists: tolerated
        session.make_remote_directories("/upload/st/2024-05-02/video")  # new date and sensor
        session.make_directory("st/2024-05-02/video")  # cached: no command
        mark = len(journal)
        session.upload(str(outbox / "x.wav"), "st/2024-05-02/video/x.wav", 100)
        session.upload(str(outbox / "x.wav"), "st/2024-05-01/audio/x.wav", 100)
    assert (ftp_root / "upload/st/2024-05-02/video/x.wav").stat().st_size == 100
    assert "MKD" not in after(journal, mark)
    mkds = [arg for cmd, arg in journal if cmd == "MKD"]
    assert mkds.count("/upload/st/2024-05-02/video") == 1  # the chain in one flight, parents first
    assert mkds.count("/upload/st/2024-05-01/audio") == 1


def test_a_folder_removed_on_the_server_after_caching_is_made_again(ftp_server, ftp_root, outbox, credentials):
    data = write(outbox / "a.wav", 100)
    with UploadSession(params_for(ftp_server, credentials)) as session:
        session.upload(str(outbox / "a.wav"), "st/d/audio/a.wav", 100)
        shutil.rmtree(ftp_root / "upload/st")
        session.upload(str(outbox / "a.wav"), "st/d/audio/b.wav", 100)
    assert (ftp_root / "upload/st/d/audio/b.wav").read_bytes() == data
