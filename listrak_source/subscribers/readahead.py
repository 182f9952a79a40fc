"""Read the next page from Listrak while the current one is being stored.

A page costs the worker Listrak's time (waiting, with the GIL free), decoding 1.3 MB of
JSON, then checking its contacts and storing them. A thread that reads ahead lets the
wait overlap the rest. It sends its next request as soon as it has an item, unless the
consumer is behind: then it first does the consumer's share of the work on the item
(`ripen`), which overlaps the consumer's own time outside the GIL (SQLite's, say). It reads
at most `depth` items ahead, so memory stays bounded whatever the size of the list.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..errors import StopRequested

T = TypeVar("T")

# How often a blocked reader looks whether it was closed, and a waiting consumer
# gives the interpreter a chance to run signal handlers.
_POLL_SECONDS = 0.1
# A closed reader in the middle of a slow request is left to finish on its own (it is a
# daemon thread and its page is thrown away), so a stop signal is never held up by it.
_JOIN_SECONDS = 1.0


class _End:
    """Put after the last item."""


class _Failure:
    """Carries the reader's exception to the consumer, in order after the items before it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Prefetch(Generic[T]):
    """An iterator over `source` whose items are produced in a thread, `depth` ahead.

    Use it as a context manager: leaving early (a stop signal, an error while storing)
    stops the reader after the item in hand, and it never blocks the caller's exit. With
    `stop`, a wait for the next item ends in StopRequested as soon as the event is set.
    """

    def __init__(
        self,
        source: Iterator[T],
        *,
        depth: int = 1,
        name: str = "prefetch",
        stop: threading.Event | None = None,
        ripen: Callable[[T], T] | None = None,
    ) -> None:
        self._source = source
        # What the consumer would do to an item first, done here while it is behind.
        self._ripen = ripen
        # Once set, waiting for an item that has not arrived is abandoned.
        self._stop = stop
        self._queue: queue.Queue[T | _End | _Failure] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        # The reader logs (retries, waits) under the caller's list and run ids.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._read,), name=name, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while True:
            if self._stop is not None and self._stop.is_set() and self._queue.empty():
                raise StopRequested("stopped while waiting for the next item")
            try:
                # A timed wait, so the main thread runs its signal handlers even when the
                # kernel delivered SIGTERM to the reader thread, which is blocked on a socket.
                item = self._queue.get(timeout=_POLL_SECONDS)
                break
            except queue.Empty:
                continue
        if isinstance(item, _End):
            raise StopIteration
        if isinstance(item, _Failure):
            raise item.exc
        return item

    def close(self) -> None:
        """Stop reading ahead; the page being read, if any, is discarded."""
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join(_JOIN_SECONDS)

    def _read(self) -> None:
        try:
            # Mapped, so an item ripened is not held while it waits to be taken.
            for item in map(self._ready, self._source):
                if not self._put(item) or self._closed.is_set():
                    return
            self._put(_End())
        except BaseException as exc:
            # Whatever it is, the consumer raises it where the scan would have.
            self._put(_Failure(exc))

    def _ready(self, item: T) -> T:
        """The item, ripened first when the consumer is behind (its queue is full)."""
        if self._ripen is not None and self._queue.full():
            return self._ripen(item)
        return item

    def _put(self, item: T | _End | _Failure) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False
