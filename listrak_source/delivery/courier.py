"""Delivery beside the read: each stored page's new messages go to Segment from a thread,
pages of few messages gathered into one post.

A first sync or a first activity pass otherwise pays for the read and the delivery one
after the other. Posting a batch is mostly gzip and the socket, which release the GIL, so a
thread that takes each page's new messages (identifies, or track events) as soon as the
page is committed lets the two overlap, and the rows never need to be read back from the
state table.

On SQLite the courier only posts; what Segment answered is written by the scanning thread
between pages, so the two never wait for each other's write lock. On PostgreSQL, which
takes writes from two connections at once, a courier told to (`records_answers`) has a
thread of its own write each answer as soon as it comes: the server marks a page's rows
sent beside the scan's next pages instead of between them (a first sync's sent marks are
about as much of the server's work as its inserts), and the courier goes on posting. The
rows it marks are of pages already committed, and the scan writes each contact once, so
the two write different rows. An outage is still the scanning thread's to record, once
the answers before it are written: labelling the list's due rows while the marks of some
of them were being written locked the same rows in another order, and PostgreSQL ended one
of the two as a deadlock.

Nothing about correctness changes: a page's changes and their message ids are committed
before the courier sees them, a row is marked sent only while it still carries the id
Segment accepted, and an answer not yet written when the process dies only means the row
goes again under the same id, which Segment drops as a copy.
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Generic

from ..records import Delivery
from .context import ListRun
from .deliver import Queue, Row, record, stop_for_outage

# Pages waiting for the courier; the scan blocks beyond this, so memory stays bounded.
_DEPTH = 2
# Pages are gathered, for a moment at most, until they hold this many messages (most of
# what one of Segment's batches holds), to go out together: a re-sync's pages carry tens of
# changes each, and a post apiece cost a request, its thread and a write of what was
# answered. A first sync's pages, thousands of messages each, go as they come.
_GATHER_MESSAGES = 2000
_GATHER_SECONDS = 1.0
# A timed wait, so the main thread still runs its signal handlers while it waits here.
_POLL_SECONDS = 0.1


class _End:
    """Put after the last page."""


class _Recorder:
    """Writes what Segment answered, in the order answered, on a thread of its own; keeps
    the first failure and then writes nothing more."""

    def __init__(self, write: Callable[[datetime, Delivery], None], name: str) -> None:
        self._write = write
        # Bounded, so answers (thousands of ids each) wait in the courier, not in memory.
        self._inbox: queue.Queue[tuple[datetime, Delivery] | None] = queue.Queue(_DEPTH)
        self.failure: BaseException | None = None
        # Answers put and not yet written (or skipped after a failure).
        self._unwritten = 0
        self._written = threading.Condition()
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._work,), name=name, daemon=True
        )
        self._thread.start()

    def put(self, now: datetime, delivery: Delivery) -> None:
        """One more answer to write."""
        with self._written:
            self._unwritten += 1
        self._inbox.put((now, delivery))

    def drain(self) -> None:
        """Wait until every answer put so far is written (or skipped after a failure)."""
        with self._written:
            while self._unwritten and self._thread.is_alive():
                self._written.wait(_POLL_SECONDS)

    def close(self, wait: float | None = None) -> None:
        """Write what was put, then stop; `wait` at most so long for it."""
        self._inbox.put(None)
        deadline = None if wait is None else time.monotonic() + wait
        while self._thread.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                return
            self._thread.join(_POLL_SECONDS)

    def _work(self) -> None:
        while (item := self._inbox.get()) is not None:
            try:
                if self.failure is None:
                    self._write(*item)
            except BaseException as exc:
                self.failure = exc
            finally:
                with self._written:
                    self._unwritten -= 1
                    self._written.notify_all()


class Courier(Generic[Row]):
    """Takes committed pages' messages and delivers them until the read is over or Segment
    fails; `send` posts a page's rows, and `ledger` records what Segment answered."""

    def __init__(
        self,
        run: ListRun,
        send: Callable[[list[Row]], Delivery],
        ledger: Queue[Row],
        *,
        records_answers: bool = False,
    ) -> None:
        self.run = run
        self.send, self._ledger = send, ledger
        self._queue: queue.Queue[list[Row] | _End] = queue.Queue(maxsize=_DEPTH)
        self.outage: str | None = None
        self._failure: BaseException | None = None
        self._handed = False
        # (when, what Segment answered, whether the courier wrote it already), appended by
        # the courier; the scan's thread writes the rest, and records an outage.
        self._answers: queue.SimpleQueue[tuple[datetime, Delivery, bool]] = queue.SimpleQueue()
        name = f"answers-{run.cfg.id}"
        self._recorder = _Recorder(self._record, name) if records_answers else None
        context = contextvars.copy_context()  # logs carry the run's list and run ids
        self._thread = threading.Thread(
            target=context.run, args=(self._work,), name=f"courier-{run.cfg.id}", daemon=True
        )
        self._thread.start()

    def handed(self) -> bool:
        """Whether any page's messages were handed over (posted, or to be)."""
        return self._handed

    def taking(self) -> bool:
        """Whether a page handed over now will be posted (no outage or failure stopped us)."""
        return self.outage is None and self._failure is None and self._recorded()

    def _recorded(self) -> bool:
        """Whether every answer so far was written (or is on its way)."""
        return self._recorder is None or self._recorder.failure is None

    def page(self, rows: list[Row]) -> None:
        """Write the answers so far, then hand over one committed page's new messages."""
        self._settle()
        if rows and self.taking():
            self._handed = True
            self._put(rows)

    def finish(self) -> None:
        """Wait for the courier to deliver what it was handed; re-raise what stopped it."""
        self._put(_End())
        while self._thread.is_alive():
            self._thread.join(_POLL_SECONDS)
        if self._recorder is not None:
            self._recorder.close()
        self._settle()
        unwritten = self._recorder.failure if self._recorder is not None else None
        for failure in (self._failure, unwritten):
            if failure is not None:
                raise failure

    def _settle(self) -> None:
        """Record what Segment answered for the pages delivered so far (caller's thread)."""
        while True:
            try:
                now, delivery, recorded = self._answers.get_nowait()
            except queue.Empty:
                return
            if not recorded:
                self._record(now, delivery)
            if delivery.outage is not None:
                if self._recorder is not None:
                    self._recorder.drain()
                stop_for_outage(self.run, delivery.outage, now, self._ledger)

    def abandon(self) -> None:
        """The run is being torn down: skip what is queued and do not wait for a post in hand."""
        self.outage = self.outage or "stopped"
        self._put(_End())
        self._thread.join(_POLL_SECONDS)
        if self._recorder is not None:
            self._recorder.close(wait=_POLL_SECONDS)

    def _put(self, item: list[Row] | _End) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return
            except queue.Full:
                continue

    def _work(self) -> None:
        try:
            ended = False
            while not ended:
                rows, ended = self._gather()
                if rows and self.outage is None:
                    self._deliver(rows)
        except BaseException as exc:
            self._failure = exc

    def _gather(self) -> tuple[list[Row], bool]:
        """The next rows to post, and whether the read is over: the pages handed over,
        together until they hold a batch, the read ends, or the first has waited its
        moment."""
        item = self._queue.get()
        if isinstance(item, _End):
            return [], True
        rows = list(item)
        until = time.monotonic() + _GATHER_SECONDS
        while len(rows) < _GATHER_MESSAGES:
            try:
                item = self._queue.get(timeout=max(0.0, until - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(item, _End):
                return rows, True
            rows += item
        return rows, False

    def _record(self, now: datetime, delivery: Delivery) -> None:
        # What the courier is handed was never posted before: no attempt is spent yet.
        record(self.run, delivery, dict.fromkeys(delivery.rejected, 0), now, self._ledger)

    def _deliver(self, rows: list[Row]) -> None:
        now = self.run.ctx.clock()
        delivery = self.send(rows)
        self.outage = delivery.outage
        if self._recorder is not None:
            self._recorder.put(now, delivery)
        self._answers.put((now, delivery, self._recorder is not None))
