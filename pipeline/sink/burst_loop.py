"""The lean loop: one thread driving the runs of small files of every session lent to it (issue 17).

A worker whose next job is a small file that may go the lean way (`DeliveryStep.lean`) lends its
session here (`lend`) and waits. This thread drives the runs of all lent sessions with a selector
(`pipeline.ftp.burst.Flow`: two flights per file, nothing blocks but sending them), so four sessions
need no GIL hand-off between four threads at every system call, which is what held a small file's
delivery back. Each run takes its next file from the board when the one before is being renamed
(the same rule as `DeliveryStep.run`'s job taken ahead: priorities hold at every file), and ends
when no small file follows, when a live file must not wait for a backlog one, at stop, or at any
answer the lean way does not expect. The session then goes back to its worker, with the job taken
ahead that goes the full way (`ahead`) and how the run ended (`stopped`), which the worker reports
through the full path's own rules.

The files verified in one turn of the loop go to a bookkeeping thread (`_Books`) at the end of the
turn, so that the loop never waits for a disk: it writes the manifest journal's lines of all the
files it holds under one fsync, then, per file, the local delete and the result, as
`DeliveryStep._delivered` does for any delivery: never before the file is verified. A session goes
back to its worker only once its own verified files are through (`lend`).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

from pipeline.sink.delivery import DeliveryStep
from pipeline.sink.ticket import Ticket
from pipeline.transport import Delivered
from pipeline.transport.runs import BurstFile, BurstFlow, BurstStopped, LeanTransport

log = logging.getLogger("beemon.sink")
#: A run goes back to its worker after this long (seconds), with the next job taken ahead: the worker looks
#: at the day manifests that are due (as it does between any two jobs), then lends the session again.
RUN_SECONDS = 2.0
#: The bookkeeping thread begins a batch (one fsync of the manifest journal) at most this often (seconds) while no
#: worker waits for it: a file verified after a quiet spell is settled at once; in a burst of small files the files
#: of several turns share one fsync (each costs the sink some 0.15 ms of CPU on this VM's disk, where a file's other
#: work is under 1 ms); their deletes and results come up to this much later. 20 ms: about 0.07 fsyncs per file at
#: 400-800 files/s, against 0.15 at 10 ms.
BOOKS_SPACING = 0.02


@dataclass(eq=False)
class Loan:
    """One session lent to the loop, and what it brings back."""

    session: LeanTransport
    first: Ticket
    #: set once the session is back with its worker
    back: threading.Event = field(default_factory=threading.Event)
    #: a job taken for this session that goes the full way (its data port asked in the last rename's flight)
    ahead: Ticket | None = None
    #: how the run ended early (at which ticket, why), None when it ended as planned
    stopped: BurstStopped | None = None
    #: the ticket the run stopped at, when it stopped
    stopped_at: Ticket | None = None
    flow: BurstFlow | None = None
    #: the data connection registered with the selector, if any
    data: socket.socket | None = None
    #: the ticket taken as the next file of the run, not started yet
    next_ticket: Ticket | None = None
    #: its files verified and not yet through their bookkeeping (`_Books`)
    books: int = 0
    #: its files verified in all
    verified: int = 0
    #: when the run began (`time.monotonic`): it ends after `RUN_SECONDS`, for its worker's other duties
    since: float = field(default_factory=time.monotonic)


class BurstLoop:
    """The loop's thread and the sessions lent to it (see the module docstring)."""

    def __init__(self, step: DeliveryStep, stopping: threading.Event) -> None:
        self.step = step
        self.stopping = stopping
        self._lock = threading.Lock()
        self._incoming: list[Loan] = []
        self._thread: threading.Thread | None = None
        #: the files verified in this turn of the loop, handed to the bookkeeping thread at its end
        self._verified: list[tuple[Loan, BurstFile, Delivered]] = []
        self._books = _Books(step)
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._wake_write.setblocking(False)

    def lend(self, session: LeanTransport, ticket: Ticket) -> Loan:
        """Run small files over `session`, `ticket` first, from the loop's thread; returns once it is back."""
        loan = Loan(session, ticket)
        with self._lock:
            self._incoming.append(loan)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="ftp-lean", daemon=True)
                self._thread.start()
        self._wake()
        loan.back.wait()
        self._books.settled(loan)  # its verified files' deletes and results are done
        return loan

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full: the loop is woken already
            self._wake_write.send(b"\0")

    # --- the loop's thread

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_read, selectors.EVENT_READ, None)
        loans: list[Loan] = []
        incoming: list[Loan] = []
        try:
            while True:
                with self._lock:
                    incoming, self._incoming = self._incoming, []
                    if not incoming and not loans:
                        self._thread = None  # a lend from now on starts another
                        return
                for loan in incoming:
                    self._open(selector, loan)
                    if loan.stopped is not None:  # at its start: back at once
                        self._give_back(selector, loan)
                    elif not loan.back.is_set():
                        loans.append(loan)
                ending = self._turn(selector, loans)
                if self._verified:  # the bookkeeping thread journals them together, then deletes and reports each
                    self._books.add(self._verified)
                    self._verified = []
                if ending:
                    for loan in ending:
                        self._give_back(selector, loan)
                    loans = [loan for loan in loans if not loan.back.is_set()]
        except BaseException as error:  # a bug: every session goes back to its worker, which reports the file
            log.error("lean upload loop error (%s: %s)", type(error).__name__, error)
            log.debug("lean upload loop error", exc_info=True)
            verified, self._verified = self._verified, []
            if verified:  # verified already: their bookkeeping still comes (their workers wait for it)
                with contextlib.suppress(Exception):  # (no thread for it: the files stay, their copies checked)
                    self._books.add(verified)
            with self._lock:
                # the loans being opened when it failed are in `incoming` only
                left = loans + [loan for loan in incoming if loan not in loans] + self._incoming
                self._incoming = []
                self._thread = None
            for loan in left:
                if loan.back.is_set():
                    continue
                flow = loan.flow
                if loan.stopped is None and not (flow is not None and flow.done):
                    current = flow.file if flow is not None else None
                    loan.stopped_at = current.token[0] if current is not None else loan.first
                    loan.stopped = BurstStopped(current, error, untake=current is None or not current.progress.stored)
                    if flow is not None:  # replies may be on their way: the connection is out of step, dropped
                        with contextlib.suppress(Exception):
                            flow.close_data()
                            loan.session.close(wait_reply=False)
                self._give_back(selector, loan)
        finally:
            selector.close()

    def _open(self, selector: selectors.BaseSelector, loan: Loan) -> None:
        """Start `loan`'s run with its first file."""
        try:
            first = self.step.lean_file(loan.first)
        except Exception as error:  # its file cannot be looked at (EIO, ENOTDIR...): the full path reports it
            loan.stopped, loan.stopped_at = BurstStopped(None, error, untake=True), loan.first
            return  # back at once (`_run`)
        if first is None:  # the file is gone: reported; the session goes straight back
            loan.back.set()
            return

        def following() -> tuple[bool, BurstFile | None]:
            return self._following(loan)

        def delivered(file: BurstFile, report: Delivered) -> None:
            loan.verified += 1  # (its `books` counted when the turn's files go to the bookkeeping, before it goes back)
            self._verified.append((loan, file, report))

        loan.flow = loan.session.lean_flow(first, following, delivered)
        selector.register(loan.flow.control, selectors.EVENT_READ, loan)
        try:
            loan.flow.start()
        except BurstStopped as stop:
            self._stopped(selector, loan, stop)
            return
        self._sync_data(selector, loan)

    def _following(self, loan: Loan) -> tuple[bool, BurstFile | None]:
        """The next file of `loan`'s run, taken from the board now (its rename's flight asks the data port)."""
        step = self.step
        while not self.stopping.is_set():
            ticket = step.board.take(timeout=0)
            if ticket is None:
                manifests = step.manifests
                current = loan.flow.file if loan.flow is not None else None
                due = (
                    manifests is not None
                    and current is not None
                    and manifests.due_after(current.remote_path, step.board.remote_paths)
                )
                return due, None
            try:
                if not step.lean(loan.session, ticket) or time.monotonic() - loan.since >= RUN_SECONDS:
                    loan.ahead = ticket
                    return True, None
                file = step.lean_file(ticket)
            except Exception:  # its file cannot be looked at (EIO, ENOTDIR...): the full path reports it, as for any
                loan.ahead = ticket
                return True, None
            if file is not None:
                loan.next_ticket = ticket
                return True, file
        return False, None

    def _turn(self, selector: selectors.BaseSelector, loans: list[Loan]) -> list[Loan]:
        """Wait for the next events (or the nearest deadline) and hand each to its run; returns the loans whose
        runs ended (as planned or early), to go back once this turn's verified files are with the bookkeeping."""
        ending: list[Loan] = []
        nearest = None
        for loan in loans:
            flow = loan.flow
            if flow is not None and loan.stopped is None and (nearest is None or flow.deadline < nearest):
                nearest = flow.deadline
        timeout = None if nearest is None else max(0.0, nearest - time.monotonic())
        for key, _mask in selector.select(timeout):
            loan = key.data
            if loan is None:
                with contextlib.suppress(OSError):
                    self._wake_read.recv(4096)
                continue
            flow = loan.flow
            if loan.stopped is not None or flow is None or flow.done:  # (already ending)
                continue
            try:
                if key.fileobj is flow.control:
                    flow.readable()
                elif key.fileobj is flow.data:
                    flow.writable()
            except BurstStopped as stop:
                self._stopped(selector, loan, stop)
                ending.append(loan)
                continue
            if loan.next_ticket is not None and flow.file.token[0] is loan.next_ticket:
                loan.next_ticket = None  # started
            if flow.data is not loan.data:
                self._sync_data(selector, loan)
            if flow.done:
                ending.append(loan)
        if nearest is not None and time.monotonic() >= nearest:
            now = time.monotonic()
            for loan in loans:
                flow = loan.flow
                if flow is not None and loan.stopped is None and not flow.done and now >= flow.deadline:
                    try:
                        flow.expired()
                    except BurstStopped as stop:
                        self._stopped(selector, loan, stop)
                        ending.append(loan)
        return ending

    def _sync_data(self, selector: selectors.BaseSelector, loan: Loan) -> None:
        """Keep the selector watching the run's data connection while it opens or sends, and no longer."""
        flow = loan.flow
        data = flow.data if flow is not None else None
        if loan.data is not None and loan.data is not data:
            with contextlib.suppress(KeyError, ValueError, OSError):
                selector.unregister(loan.data)
            loan.data = None
        if data is not None and loan.data is None:
            selector.register(data, selectors.EVENT_WRITE, loan)
            loan.data = data

    def _stopped(self, selector: selectors.BaseSelector, loan: Loan, stop: BurstStopped) -> None:
        """`loan`'s run ended early: its sockets leave the selector now (a closed one's number may be given to
        the next socket any flow opens in this turn); it goes back after this turn's bookkeeping (`_run`)."""
        loan.stopped = stop
        loan.stopped_at = stop.file.token[0] if stop.file is not None else loan.first
        self._release(selector, loan)

    def _release(self, selector: selectors.BaseSelector, loan: Loan) -> None:
        """The run's data connection and local file closed, its sockets off the selector (once)."""
        flow = loan.flow
        if flow is None:
            return
        flow.close_data()
        self._sync_data(selector, loan)
        with contextlib.suppress(KeyError, ValueError, OSError):
            selector.unregister(flow.control)

    def _give_back(self, selector: selectors.BaseSelector, loan: Loan) -> None:
        """End `loan`'s run: its sockets off the selector, a next file taken but not started given back."""
        self._release(selector, loan)
        if loan.next_ticket is not None and loan.next_ticket is not loan.stopped_at:
            self.step.board.untake(loan.next_ticket)
        loan.next_ticket = None
        loan.back.set()


class _Books:
    """The bookkeeping thread: verified files' manifest lines written together under one fsync (the loop must
    not wait for a disk), then each file's local delete, and their results (`DeliveryStep.lean_delivered_many`).

    A batch begins at most every `BOOKS_SPACING` while no worker waits for it: a quick bookkeeping
    would otherwise take the loop's files one or two at a time, and an fsync each cost more than all the rest
    of their bookkeeping. A worker waiting for its loan's files (`settled`) has the next batch begin at once.
    """

    def __init__(self, step: DeliveryStep) -> None:
        self.step = step
        self.lock = threading.Lock()
        self._work = threading.Condition(self.lock)  # this thread waits on it: for files, or out its spacing
        self._done = threading.Condition(self.lock)  # workers wait on it for their loans' files (`settled`)
        self._queue: list[tuple[Loan, BurstFile, Delivered]] = []
        self._thread: threading.Thread | None = None
        self._idle = False  # this thread waits for files
        self._hurry = 0  # workers waiting in `settled`: no spacing
        #: batches begun before their spacing was out, for a worker waiting in `settled`
        self.hurried = 0

    def add(self, verified: list[tuple[Loan, BurstFile, Delivered]]) -> None:
        """Settle `verified` (in this thread's next batch); their loans count them until then (`settled`)."""
        with self.lock:
            if self._thread is None:  # started before anything is counted: a thread that cannot start (no memory
                thread = threading.Thread(target=self._run, name="ftp-lean-books", daemon=True)
                thread.start()  # for one) raises here, and no worker then waits for files nobody will settle
                self._thread = thread
            elif self._idle:  # (spacing out its wait, it takes these with the others when it ends)
                self._work.notify()
            for loan, _, _ in verified:
                loan.books += 1
            self._queue.extend(verified)

    def settled(self, loan: Loan) -> None:
        """Return once every file `loan` verified has had its bookkeeping (the next batch begins now)."""
        with self.lock:
            if not loan.books:
                return
            self._hurry += 1
            try:
                self._work.notify()
                while loan.books:
                    self._done.wait()
            finally:
                self._hurry -= 1

    def _run(self) -> None:
        began = -BOOKS_SPACING
        while True:
            with self.lock:
                while not self._queue:
                    self._idle = True
                    self._work.wait()
                    self._idle = False
                # Files verified meanwhile join this batch and its fsync.
                while (left := began + BOOKS_SPACING - time.monotonic()) > 0:
                    if self._hurry:
                        self.hurried += 1
                        break
                    self._work.wait(left)
                began = time.monotonic()
                batch, self._queue = self._queue, []
            try:
                self._settle(batch)
            except BaseException as error:  # a bug: say it; the files stay local and are sent again
                log.error("lean upload bookkeeping error (%s: %s)", type(error).__name__, error)
                log.debug("lean upload bookkeeping error", exc_info=True)
            finally:
                with self.lock:
                    for loan, _, _ in batch:
                        loan.books -= 1
                    if self._hurry:
                        self._done.notify_all()

    def _settle(self, batch: list[tuple[Loan, BurstFile, Delivered]]) -> None:
        manifests = self.step.manifests
        if manifests is not None:
            try:
                manifests.record_many(
                    [(f.remote_path, report.sha256, f.size) for _, f, report in batch if report.sha256 is not None]
                )
            except Exception as error:  # a bug (a disk's errors are `record_many`'s): the files stay, tried again
                for _, file, _ in batch:
                    self.step.unexpected(file.token[0], error)
                return
        self.step.lean_delivered_many([(file, report) for _, file, report in batch], recorded=manifests is not None)
