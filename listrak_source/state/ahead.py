"""A read begun on a thread of its own, and waited for where its result is first needed.

A re-sync recognizes contacts by what their rows held when it began (state/digests.py),
which is one read of the whole list: most of its time is the database's, walking the
table outside the GIL. Begun with the scan's first request, it overlaps the first pages
instead of holding the scan up when the table is first needed.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")

# How often a wait looks again, so the waiting thread runs its signal handlers meanwhile.
_POLL_SECONDS = 0.1


class Cancelled(Exception):
    """Raised by a read that found it was no longer wanted."""


class Ahead(Generic[T]):
    """`work(cancelled)` run on a daemon thread; `result` waits for it and gives what it
    returned, or raises what it raised, in the waiting thread. `work` should look at the
    event between its steps, and raise Cancelled once it is set."""

    def __init__(self, work: Callable[[threading.Event], T], *, name: str) -> None:
        self._cancelled = threading.Event()
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        # The thread logs, if it does, under the caller's list and run ids.
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, work), name=name, daemon=True
        )
        self._thread.start()

    def _run(self, work: Callable[[threading.Event], T]) -> None:
        try:
            self._value = work(self._cancelled)
        except BaseException as exc:  # raised again in the thread that takes the result
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> T:
        """What the work returned, once it has; its exception, raised here."""
        self._wait()
        if self._error is not None:
            raise self._error
        return cast(T, self._value)

    def cancel(self) -> None:
        """Not wanted any more: the work stops at its next look, and this returns once it
        has, so that nothing of it is left using a connection the run goes on to close."""
        self._cancelled.set()
        self._wait()

    def _wait(self) -> None:
        while not self._done.wait(_POLL_SECONDS):
            pass

    @property
    def running(self) -> bool:
        """Whether the work has not finished yet."""
        return not self._done.is_set()
