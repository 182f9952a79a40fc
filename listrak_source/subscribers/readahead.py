"""Read the next page from Listrak while the current one is being stored.

A page costs the worker Listrak's time (waiting, with the GIL free), decoding 1.3 MB of
JSON, then checking its contacts and storing them. A thread that reads ahead lets the
wait overlap the rest. It sends its next request as soon as it has an item, unless the
consumer is behind: then it first does the consumer's share of the work on the item
(`ripen`), which overlaps the consumer's own time outside the GIL (SQLite's, say). It reads
at most `depth` items ahead, so memory stays bounded whatever the size of the list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from ..errors import StopRequested
from ..feed import Empty, Feed

T = TypeVar("T")

# How often a waiting consumer gives the interpreter a chance to run signal handlers.
_POLL_SECONDS = 0.1
# A closed reader in the middle of a slow request is left to finish on its own (it is a
# daemon thread and its page is thrown away), so a stop signal is never held up by it.
_JOIN_SECONDS = 1.0


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
        # Once set, waiting for an item that has not arrived is abandoned.
        self._stop = stop
        # The reader logs (retries, waits) under the caller's list and run ids.
        self._feed = Feed(lambda: source, depth=depth, name=name, ripen=ripen)
        self._thread = self._feed.thread

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        while True:
            if self._stop is not None and self._stop.is_set() and not self._feed.pending():
                raise StopRequested("stopped while waiting for the next item")
            try:
                # A timed wait, so the main thread runs its signal handlers even when the
                # kernel delivered SIGTERM to the reader thread, which is blocked on a socket.
                return self._feed.take(timeout=_POLL_SECONDS)
            except Empty:
                continue

    def close(self) -> None:
        """Stop reading ahead; the page being read, if any, is discarded."""
        self._feed.close(wait=_JOIN_SECONDS)
