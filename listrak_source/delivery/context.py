"""What a run is handed (RunContext), the adapters it needs (protocols), and one list's run.

The orchestration names the two outside systems only through these protocols, so it never
imports the Listrak client or the Segment emitter; `cli/wiring.py` hands in the real ones.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from ..config import ListSettings, Settings
from ..messages import MessageIds
from ..records import Change, Contact, Delivery, Page, Pending, RawPage, Reject, RunResult
from ..state import Database
from ..state.locks import HeldLock


class PageSource(Protocol):
    """The part of the Listrak client a run needs: pages as sent, and their checking."""

    def iter_raw_pages(
        self,
        list_id: int,
        *,
        subscribed: bool = True,
        field_ids: Sequence[int] = (),
        page_size: int = 5000,
        start_date: datetime | None = None,
        use_original_subscribe_date: bool | None = None,
    ) -> Iterator[RawPage]: ...

    def parse(self, page: RawPage) -> Page: ...

    def digest(self, page: RawPage, context: str) -> None: ...

    def parse_unknown(self, page: RawPage, known: Sequence[int]) -> Page | None: ...

    def get_contact(
        self, list_id: int, email: str, *, field_ids: Sequence[int] = ()
    ) -> Contact | Reject | None: ...


class Emitter(Protocol):
    """Anything that can deliver to Segment: Segment itself, or a dry run's printer.

    `deliver` builds the identifies of pending rows; `send` takes messages already built
    (the activity's track calls): both go through the same batches, answers and pace.
    """

    def deliver(
        self, rows: Sequence[Pending], trait: str, retired: Sequence[str] = ()
    ) -> Delivery: ...

    def send(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> Delivery: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RunContext:
    """Everything a run touches, built by `cli/wiring.py`; tests hand in their own clock and ids.

    A dry run gets the same shape: a Database over a throwaway copy (SQLite) or over a
    connection that is rolled back (PostgreSQL), and an emitter that prints.
    """

    settings: Settings
    db: Database
    listrak: PageSource
    emitter: Emitter
    holder: str
    clock: Callable[[], datetime] = _utcnow
    new_id: Callable[[], str] = field(default_factory=MessageIds)
    stop: threading.Event = field(default_factory=threading.Event)
    # Called with (stage, count) after each page and each delivery chunk.
    on_progress: Callable[[str, int], None] | None = None
    # The emitter prints instead of sending, and the database keeps nothing.
    dry_run: bool = False


# Segment's timestamps count milliseconds: a stamp after another is at least this later.
_STEP = timedelta(milliseconds=1)
# How far ahead of a stamp given ahead of the clock the run records that it may stamp.
_RESERVE = timedelta(minutes=5)


@dataclass
class ListRun:
    """One run of one list: what it was handed, its list, its lock, and its outcome so far."""

    ctx: RunContext
    cfg: ListSettings
    result: RunResult
    # Released by the database or the kernel if we die.
    lock: HeldLock
    # Called with each page's changes once they are committed (delivery beside the scan).
    on_stored: Callable[[list[Change], datetime], None] | None = None
    # Whether on_stored posts what it is handed (no outage has stopped it): a page's rows
    # are then recorded in doubt in the page's own transaction, before they are posted.
    posting: Callable[[], bool] = lambda: False
    # Whether on_stored was handed messages this run: until the run ends they may be
    # posted, and what Segment answers recorded, whatever the page being stored writes.
    handed: Callable[[], bool] = lambda: False
    # The first contact whose dates are yet to come, as an example for the run's note.
    first_future: Contact | None = None
    # The latest moment any earlier run recorded (see `detected`), when this run
    # began on the monotonic clock, and the latest stamp it has given.
    floor: datetime | None = None
    began: float = field(default_factory=time.monotonic)
    last_stamp: datetime | None = None
    # Stamps up to this moment may be given without recording them first (see _reserve).
    reserved: datetime | None = None
    # The old traits a rename has every message of the list remove (sent as null) as well,
    # and whether the scan skipped a new `true` only for them: it fits once they are gone,
    # with no change in Listrak to bring it back to an incremental poll.
    retired: tuple[str, ...] = ()
    held_by_rename: bool = False

    def detected(self) -> datetime:
        """When a change is detected, its message's timestamp: our clock, but never before
        a moment any earlier run, of any list, may have stamped a message with, nor before this
        run's last stamp. Segment keeps a profile's traits in timestamp order, so a clock
        set back would otherwise put a removal before the `true` it removes. While the
        clock is behind, the stamps go on from that moment at the monotonic clock's pace."""
        now = stamp = self.ctx.clock()
        if self.floor is not None:
            elapsed = timedelta(seconds=time.monotonic() - self.began)
            stamp = max(stamp, self.floor + elapsed + _STEP)
        if self.last_stamp is not None:
            stamp = max(stamp, self.last_stamp)
        self.last_stamp = stamp
        if stamp > now:
            self._reserve(stamp)
        return stamp

    def _reserve(self, stamp: datetime) -> None:
        """Stamps ahead of the clock are recorded before they are used, a while ahead at a
        time: a run killed before it ends records no last stamp, and its start alone, by a
        clock that is behind, would let the next run stamp before them."""
        if self.reserved is not None and stamp <= self.reserved:
            return
        self.reserved = stamp + _RESERVE
        self.ctx.db.runs.reserve_stamps(self.result.run_id, self.reserved)

    def progress(self, stage: str, count: int) -> None:
        """Report progress to whoever is watching (a progress bar, the watchdog)."""
        if self.ctx.on_progress is not None:
            self.ctx.on_progress(stage, count)
