"""A direct `PipeSender` (the parent's job pipes) on real OS pipes: the putting thread writes what the pipe takes at
once, the thread the rest; never a blocked caller, never a message out of order, the framing of `send_bytes`."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from pipeline.sink import pipes
from pipeline.sink.pipes import PipeSender, read_into
from tests.helpers import wait_until

BIG = b"x" * 300_000  # more than a pipe holds: the pipe takes part of it, the thread writes the rest


def test_a_put_that_the_pipe_takes_is_written_by_the_putting_thread_framed_as_send_bytes():
    """No hand-off to a writing thread per job: the put returns with its message in the pipe, and no thread ever
    started; the reader's plain `Connection.recv_bytes` (and `recv`) take each write apart."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test", direct=True)
    for i in range(50):
        sender.put(("job", i))
        assert reader.poll(0), i  # in the pipe when the put returns, not on its way from another thread
        assert reader.recv() == ("job", i)
    sender.put(("job", "last"))
    assert pipes._unpacked(reader.recv_bytes()) == [("job", "last")]
    assert sender._thread is None
    sender.close(5.0)
    assert writer.closed
    with pytest.raises(EOFError):
        reader.recv()


def test_a_full_pipe_never_blocks_the_caller_and_the_order_stays_until_the_thread_caught_up():
    """What the pipe does not take (the rest of a long write, then everything put while that is unwritten) goes to
    the thread; the puts return at once although nobody reads; once the thread has written it all, a put writes
    itself again."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test", direct=True)
    started = time.monotonic()
    sender.put(("blob", BIG))  # the pipe takes part of it
    for i in range(2_000):
        sender.put(("job", i))
    assert time.monotonic() - started < 5  # (a blocking write would hang here: nobody reads yet)
    assert sender._thread is not None
    received: list[object] = []
    reading = threading.Thread(target=read_into, args=(reader, lambda m: received.append(m) or m != ("job", 1_999)))
    reading.start()
    reading.join(10)
    assert received == [("blob", BIG)] + [("job", i) for i in range(2_000)]
    wait_until(lambda: not sender._writing, timeout=10)  # the thread is back to waiting
    sender.put(("job", "again"))
    assert reader.poll(0) and reader.recv() == ("job", "again")
    sender.close(5.0)
    assert not sender._thread.is_alive() and writer.closed


def test_puts_from_many_threads_each_arrive_once_whole_in_each_threads_order():
    """The parent's stream and the original API's callers may put at once: each write whole, none lost."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test", direct=True)
    received: list[tuple[int, int, bytes]] = []
    reading = threading.Thread(target=pipes.read_all_into, args=(reader, lambda m: received.append(m) or True))
    reading.start()

    def put_many(who: int) -> None:
        for i in range(500):
            sender.put((who, i, b"y" * (i * 37 % 9_000)))  # some longer than an atomic pipe write

    putters = [threading.Thread(target=put_many, args=(who,)) for who in range(4)]
    for putter in putters:
        putter.start()
    for putter in putters:
        putter.join(30)
    sender.close(10.0)
    reading.join(10)
    assert not reading.is_alive()
    for who in range(4):
        assert [(i, len(blob)) for w, i, blob in received if w == who] == [(i, i * 37 % 9_000) for i in range(500)]


def test_a_reader_gone_ends_the_sender_quietly_and_later_puts_are_dropped():
    """The sink died: the put that finds the pipe broken leaves it to the thread, which ends and closes its end;
    later puts write nothing (the closed number may be another file's by then) and never raise."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test", direct=True)
    number = writer.fileno()
    sender.put("before")
    reader.close()
    sender.put("after the reader")  # EPIPE here: the thread finds the same and ends
    thread = sender._thread
    assert thread is not None
    thread.join(5)
    assert not thread.is_alive() and writer.closed
    spares = [os.pipe() for _ in range(3)]  # one of them takes the number back (the lowest free ones are reused)
    try:
        reused = [(read_end, write_end) for read_end, write_end in spares if write_end == number]
        sender.put("after the end")
        for read_end, _ in reused:
            os.set_blocking(read_end, False)
            with pytest.raises(BlockingIOError):
                os.read(read_end, 100)  # nothing reached the file that has the number now
    finally:
        for ends in spares:
            for end in ends:
                os.close(end)
    started = time.monotonic()
    sender.close(5.0)
    assert time.monotonic() - started < 2


def test_a_message_that_cannot_be_pickled_is_logged_and_the_rest_still_go(caplog):
    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "test", direct=True)
    sender.put(("job", lambda: None))  # a lambda cannot be pickled: left to the thread, which says so
    sender.put(("job", "b.wav"))
    sender.close(5.0)
    assert reader.recv() == ("job", "b.wav")
    assert "could not send a tuple through the pipe" in caplog.text


def test_a_spaced_direct_sender_writes_a_lone_job_itself_and_a_burst_in_few_writes():
    """The parent's job pipes: a job after a quiet spell is in the pipe when its put returns; the jobs of a burst
    that follow within the spacing go together in the thread's next write (the sink's feeder wakes once, not once
    per job), in order; after another quiet spell a put writes itself again."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    spacing = 0.05
    sender = PipeSender(writer, "test", direct=True, spacing=spacing)
    sender.put(("job", "lone"))
    assert reader.poll(0) and pipes.receive(reader) == [("job", "lone")]
    writes: list[list[object]] = []

    def read() -> None:
        while True:
            try:
                writes.append(pipes.receive(reader))
            except (EOFError, OSError):
                return

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    started = time.monotonic()
    for i in range(200):
        sender.put(("job", i))
        time.sleep(0.0005)
    burst = time.monotonic() - started
    wait_until(lambda: sum(len(batch) for batch in writes) == 200, timeout=10)
    assert [m for batch in writes for m in batch] == [("job", i) for i in range(200)]
    assert len(writes) <= burst / spacing + 3, (len(writes), burst)
    time.sleep(spacing * 2)  # quiet again
    wait_until(lambda: not sender._writing, timeout=5)
    written = len(writes)
    sender.put(("job", "after"))
    wait_until(lambda: len(writes) > written, timeout=5)
    assert writes[-1] == [("job", "after")]
    sender.close(5.0)
    reading.join(5)


def test_the_sink_s_feed_takes_every_job_once_in_order_until_the_parent_s_end_of_the_pipe():
    """The sink's feeder reads whatever the pipe holds at once (`read_all_batches_into`): jobs written one by one and jobs
    the thread wrote together (put while the feeder was not reading yet) reach the board once each, in order,
    counted; the parent's end of the pipe ends the feeder."""
    from operators.model import Priority, UploadJob
    from pipeline.sink.child import feed
    from pipeline.sink.model import SinkCounters

    reader, writer = multiprocessing.Pipe(duplex=False)
    sender = PipeSender(writer, "jobs-secondary", direct=True)
    jobs = [UploadJob(f"/o/{i}.wav", f"/r/{i}.wav", i, i, Priority.BACKFILL) for i in range(3_000)]
    for job in jobs[:1_500]:  # more than the pipe holds: the rest waits in the sender's thread
        sender.put(job)

    class Board:
        def __init__(self) -> None:
            self.jobs: list[UploadJob] = []

        def put_many(self, jobs: list[UploadJob]) -> None:  # the sink's (`Sink.put_many`): one read's jobs at once
            self.jobs.extend(jobs)

    board, counters = Board(), SinkCounters()
    feeder = threading.Thread(target=feed, args=(reader, board, counters))
    feeder.start()
    for job in jobs[1_500:]:
        sender.put(job)
    sender.close(10.0)
    feeder.join(10)
    assert not feeder.is_alive()
    assert board.jobs == jobs
    assert counters.snapshot().received_secondary == 3_000


def test_a_job_s_priority_is_pickled_by_its_name_and_comes_back_as_itself():
    """`Priority.__reduce_ex__`: by name, so the sink's unpickling of each job calls no enum class; every protocol
    gives the member back, and a job crosses whole."""
    import pickle

    from operators.model import Priority, UploadJob

    for priority in Priority:
        for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
            assert pickle.loads(pickle.dumps(priority, protocol)) is priority
        assert f"Priority.{priority.name}".encode() in pickle.dumps(priority, pickle.HIGHEST_PROTOCOL)
    job = UploadJob("/o/a.csv", "/r/a.csv", 3, 5, Priority.BACKFILL, day_file=True, into_folder=True)
    back = pickle.loads(pickle.dumps(job, pickle.HIGHEST_PROTOCOL))
    assert back == job and back.priority is Priority.BACKFILL and int(back.priority) == 1
