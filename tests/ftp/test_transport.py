"""FtpTransport through the seam the sink uses (`make_transport`, `Transport`), against a real pyftpdlib server."""

from __future__ import annotations

from pipeline.ftp.transport import FtpTransport
from pipeline.transport import Delivery, DeliveryProgress, Transport, make_transport
from tests.ftp_faults import Faults
from tests.helpers import params_for, write


def test_make_transport_delivers_a_file_and_reports_how_far_it_got(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    data = write(outbox / "a.wav", 40_000)
    transport: Transport = make_transport(params_for(server, credentials))
    assert isinstance(transport, FtpTransport) and not transport.connected
    transport.connect()
    progress = DeliveryProgress()
    try:
        delivered = transport.deliver(Delivery(str(outbox / "a.wav"), "st/d/audio/a.wav", len(data)), progress)
        transport.keep_alive()
    finally:
        transport.close()
    assert (ftp_root / "upload/st/d/audio/a.wav").read_bytes() == data
    assert progress == DeliveryProgress(stored=True, complete=True, renamed=True)
    assert (delivered.bytes_sent, delivered.resumed_from, delivered.verified) == (len(data), 0, True)
    assert not transport.connected and faults.commands("NOOP") == [""]


def test_a_stale_temp_is_removed_and_a_missing_one_is_no_error(make_server, ftp_root, credentials):
    server = make_server()
    stale = ftp_root / "upload/st/d/audio/.a.wav.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"cut short")
    transport = make_transport(params_for(server, credentials))
    transport.connect()
    try:
        transport.remove_stale_temp("st/d/audio/a.wav")
        transport.remove_stale_temp("st/d/audio/a.wav")  # gone already: nothing to do
    finally:
        transport.close()
    assert not stale.exists()


def test_target_in_folder_and_idle_release_a_port_asked_ahead(make_server, ftp_root, outbox, credentials):
    faults = Faults()
    server = make_server(faults=faults)
    (ftp_root / "upload/inbox").mkdir(parents=True)
    write(outbox / "a.wav", 10)
    transport = make_transport(params_for(server, credentials))
    transport.connect()
    try:
        assert transport.target_in_folder("inbox", "a.wav") == "inbox/a.wav"
        assert transport.target_in_folder("inbox/b.wav", "a.wav") == "inbox/b.wav"
        delivery = Delivery(str(outbox / "a.wav"), "inbox/a.wav", 10, next_upload=lambda: True)
        transport.deliver(delivery, DeliveryProgress())
        transport.idle()  # the port asked for the next upload that is not coming
    finally:
        transport.close()
    assert faults.commands("ABOR") == [""]
