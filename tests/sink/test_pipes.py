"""The sink's pipe channels on real OS pipes: order, counts never behind the results they changed, bounded close."""

from __future__ import annotations

import multiprocessing
import threading
import time

from pipeline.sink import pipes
from pipeline.sink.pipes import LATER_SECONDS, Batch, PipeSender, read_into
from tests.helpers import wait_until

BIG = b"x" * 300_000  # more than a pipe holds: the writing thread blocks in it until the reader reads


def test_a_burst_of_count_changes_is_one_message_sent_before_the_result_that_follows():
    """The parent keeps the last counts it read: they are never behind a result (ahead is what shared memory was)."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test")
    counts = [0]
    sender.put(("blob", BIG))
    wait_until(lambda: not sender._buffer)  # the writer took it alone and is stuck in its send: the rest waits
    for _ in range(100):
        counts[0] += 1
        sender.put_latest("counts", lambda: ("counts", counts[0]))
    sender.put(("result", "a.wav"))
    counts[0] += 1  # a change after the result, while the first snapshot is still unsent: it joins that one
    sender.put_latest("counts", lambda: ("counts", counts[0]))
    received: list[tuple[str, object]] = []
    reading = threading.Thread(target=read_into, args=(reader, lambda m: received.append(m) or m[0] != "result"))
    reading.start()
    reading.join(5)
    assert received[1:] == [("counts", 101), ("result", "a.wav")]
    counts[0] += 1  # the writer is past the snapshot now: a new change is a new message
    sender.put_latest("counts", lambda: ("counts", counts[0]))
    sender.close(5.0)
    assert reader.recv() == ("counts", 102)


def test_close_never_hangs_on_a_reader_that_stopped_reading_or_is_gone():
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test")
    for _ in range(5):
        sender.put(BIG)  # the first fills the pipe; nobody reads
    started = time.monotonic()
    sender.close(0.3)  # keeps what is buffered, waits at most 0.3 s
    assert time.monotonic() - started < 2
    reader.close()  # the reader goes away: the blocked write fails, the thread ends and closes its end
    thread = sender._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and writer.closed
    sender.put("after close")  # dropped, never raises


def test_read_into_ends_when_the_writer_is_gone():
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test")
    received: list[object] = []
    done = threading.Thread(target=read_into, args=(reader, lambda message: received.append(message) or True))
    done.start()
    sender.put(1)
    sender.put(2)
    sender.close(5.0)  # written, then closed: the reader sees the end of the pipe
    done.join(5)
    assert not done.is_alive() and received == [1, 2]


def test_a_message_that_cannot_be_pickled_is_logged_and_the_rest_still_go(caplog):
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test")
    sender.put(("result", lambda: None))  # a lambda cannot be pickled
    sender.put(("result", "b.wav"))
    sender.close(5.0)
    assert reader.recv() == ("result", "b.wav")
    assert "could not send a tuple through the pipe" in caplog.text


def test_a_snapshot_alone_waits_a_little_for_company_and_is_never_lost(monkeypatch):
    """Counts change several times per file: alone they wait (at most LATER_SECONDS) for the next result, then go
    with it as one write, produced then (so never behind it); with nothing else coming they still go."""
    monkeypatch.setattr(pipes, "LATER_SECONDS", 30.0)  # (a loaded machine must not end the wait early)
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test")
    counts = [0]
    for _ in range(3):
        counts[0] += 1
        sender.put_latest("counts", lambda: ("counts", counts[0]))
        time.sleep(0.01)
    counts[0] += 1
    sender.put(("result", "a.wav"))
    assert reader.recv() == Batch([("counts", 4), ("result", "a.wav")])  # one write, the snapshot the latest
    monkeypatch.setattr(pipes, "LATER_SECONDS", LATER_SECONDS)
    counts[0] += 1
    sender.put_latest("counts", lambda: ("counts", counts[0]))
    assert reader.poll(5) and reader.recv() == ("counts", 5)  # alone: sent once its wait is over
    sender.close(5.0)


def test_a_spaced_sender_sends_a_lone_message_at_once_and_a_burst_in_few_writes():
    """The sink's reports under a burst of small files: results and log records arriving every millisecond go
    in a few writes (each a wake-up and a pickling on both sides), in order; one after a quiet spell goes at
    once. Without spacing, the writer woke for nearly every message."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    spacing = 0.05
    sender = PipeSender(writer, "test", spacing=spacing)
    writes: list[tuple[float, list[object]]] = []

    def read() -> None:
        while True:
            try:
                messages = pipes.receive(reader)
            except (EOFError, OSError):
                return
            writes.append((time.monotonic(), messages))

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    time.sleep(spacing)  # the sender has been quiet for longer than its spacing
    put = time.monotonic()
    sender.put(("result", -1))
    wait_until(lambda: writes, timeout=5)
    assert writes[0][1] == [("result", -1)] and writes[0][0] - put < spacing / 2  # not held back
    burst_started = time.monotonic()
    for i in range(200):
        sender.put(("result", i))
        time.sleep(0.001)
    burst = time.monotonic() - burst_started
    sender.close(5.0)
    reading.join(5)
    assert [m for _, batch in writes[1:] for m in batch] == [("result", i) for i in range(200)]
    assert len(writes) - 1 <= burst / spacing + 2, (len(writes), burst)


def test_an_outcome_is_pickled_by_its_name_and_comes_back_as_itself():
    """`Outcome.__reduce_ex__`: by name, so unpickling calls no enum class; every protocol gives the member back."""
    import pickle

    from pipeline.sink.model import Outcome, UploadResult

    for outcome in Outcome:
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(outcome, protocol)) is outcome
        assert f"Outcome.{outcome.name}".encode() in pickle.dumps(outcome, pickle.HIGHEST_PROTOCOL)
    result = UploadResult("/o/a.wav", "/r/a.wav", 3, 0.5, 1, Outcome.PARKED, "550 no")
    assert pickle.loads(pickle.dumps(Batch([result, ("counts", 1)]), pickle.HIGHEST_PROTOCOL)) == [
        result,
        ("counts", 1),
    ]


def _reading_all(reader, stop_at: object = None) -> tuple[threading.Thread, list[object]]:
    """`read_all_into` started on `reader` in a thread, and the list it fills (until `stop_at`)."""
    received: list[object] = []
    reading = threading.Thread(
        target=pipes.read_all_into, args=(reader, lambda m: received.append(m) or m != stop_at), daemon=True
    )
    reading.start()
    return reading, received


def _read_all(reader, stop_at: object = None) -> list[object]:
    reading, received = _reading_all(reader, stop_at)
    reading.join(10)
    assert not reading.is_alive()
    return received


def test_read_all_into_takes_apart_what_one_read_holds_and_what_takes_many():
    """`read_all_into` reads whatever the pipe holds at once: many writes in one read, a write longer than the pipe
    (and than one read) over several, and ends at the end of the pipe; in order, every message once."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test")
    expected: list[object] = []
    for i in range(2_000):  # written ahead of the reader: one read takes many writes
        sender.put(("result", i))
        expected.append(("result", i))
        if i % 500 == 0:
            sender.put(("blob", BIG))  # more than the pipe, more than READ_SIZE
            expected.append(("blob", BIG))
    reading, received = _reading_all(reader)
    sender.close(10.0)
    reading.join(10)
    assert not reading.is_alive()
    assert received == expected


def test_read_all_into_reads_the_long_length_and_stops_where_told_or_where_a_write_is_cut():
    """The long form of the length (-1, then 8 bytes) is read too; a message `handle` refuses ends the reading; a
    write cut by the writer's end ends it, with what came whole before passed on."""
    import os
    import pickle
    import struct

    def frame(message: object, long: bool = False) -> bytes:
        payload = pickle.dumps(message)
        head = struct.pack("!i", -1) + struct.pack("!Q", len(payload)) if long else struct.pack("!i", len(payload))
        return head + payload

    for data, stop_at, expected in (
        (frame("a") + frame("b", long=True) + frame("c"), None, ["a", "b", "c"]),
        (frame("a") + frame("end") + frame("after"), "end", ["a", "end"]),
        (frame("a") + frame("cut")[:-3], None, ["a"]),
        (frame("a") + frame("cut", long=True)[:6], None, ["a"]),
    ):
        read_end, write_end = os.pipe()
        os.write(write_end, data)
        os.close(write_end)
        reader = multiprocessing.connection.Connection(read_end, writable=False)
        assert _read_all(reader, stop_at) == expected
        reader.close()
