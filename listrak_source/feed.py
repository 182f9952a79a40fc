"""Items made on a thread of their own, a few ahead of the thread that takes them.

A scan reads Listrak's next page while it stores this one (subscribers/readahead.py), and
PostgreSQL's table is walked in two halves at once (state/page_sql.py): both are a maker
on a thread and a taker beside it. The items, then the end or the maker's failure, reach
the taker in order; at most `depth` wait, so memory stays bounded. Closed, the maker stops
at its next item, and what it made is closed in its own thread (a connection it opened is
given back there).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

# How often a maker blocked on a full queue looks whether it was closed.
_POLL_SECONDS = 0.1


class Empty(Exception):
    """No item was made within the wait."""


class _End:
    """Put after the last item."""


class _Failure:
    """Carries the maker's exception to the taker, in order after the items before it."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Feed(Generic[T]):
    """`make()`'s items, made on a thread of their own (under the caller's log context).

    `ripen`, when given, is applied by the maker to an item it makes while the taker is
    behind (every place waits): the taker's own first step, done beside the taker's time
    outside the GIL.
    """

    def __init__(
        self,
        make: Callable[[], Iterable[T]],
        *,
        depth: int = 1,
        name: str = "feed",
        ripen: Callable[[T], T] | None = None,
    ) -> None:
        self._make, self._ripen = make, ripen
        self._queue: queue.Queue[T | _End | _Failure] = queue.Queue(maxsize=depth)
        self._closed = threading.Event()
        self._ended = False
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run,), name=name, daemon=True
        )
        self.thread.start()

    def take(self, timeout: float | None = None) -> T:
        """The next item; StopIteration after the last, the maker's failure in its place,
        Empty when none came within `timeout` seconds."""
        if self._ended:
            raise StopIteration
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise Empty from None
        if isinstance(item, _End | _Failure):
            self._ended = True
            if isinstance(item, _Failure):
                raise item.exc
            raise StopIteration
        return item

    def ready(self) -> Iterator[T]:
        """The items made so far and not yet taken, without waiting for more."""
        while not self._ended and not self._queue.empty():
            try:
                yield self.take(timeout=0)
            except (Empty, StopIteration):
                return

    def rest(self) -> Iterator[T]:
        """Every item not yet taken, each as it is made."""
        while True:
            try:
                yield self.take()
            except StopIteration:
                return

    def pending(self) -> bool:
        """Whether an item, the end or a failure waits to be taken."""
        return not self._queue.empty()

    def close(self, wait: float | None = None) -> None:
        """Stop making; what waits is thrown away. Returns once the maker has stopped, or
        after `wait` seconds (a maker in the middle of a slow step is left to finish on its
        own: it is a daemon thread, and what it makes is thrown away)."""
        self._closed.set()
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(wait)

    def _run(self) -> None:
        try:
            items = iter(self._make())
            try:
                # Mapped, so an item ripened is not held while it waits to be taken.
                for item in map(self._ready, items):
                    if not self._put(item) or self._closed.is_set():
                        return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
            self._put(_End())
        except BaseException as exc:
            # Whatever it is, the taker raises it where it would have met it.
            self._put(_Failure(exc))

    def _ready(self, item: T) -> T:
        """The item, ripened first when the taker is behind (its queue is full)."""
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
