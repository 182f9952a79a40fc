"""Pure scan planning: a full scan, or the incremental pair of scans since a high-water mark."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

from ..records import Contact, ListState, ScanSpec

FULL = (ScanSpec(),)
# No subscription predates this; older dates (year 1, say) would also overflow the overlap.
EARLIEST = datetime(1970, 1, 1)


def latest_usable(now: datetime) -> datetime:
    """The latest naive Listrak date that may move the high-water mark: our clock, in UTC.

    Listrak's dates are naive and look like US Eastern time, behind UTC. A date after our
    clock's UTC is wrong, or in a zone ahead of UTC; either way, as the mark it would make
    the next incremental window start in the future and miss every change until Listrak's
    clock caught up (up to 14 hours, the zone furthest ahead). Such a date never moves it.
    """
    return now.astimezone(UTC).replace(tzinfo=None)


def plan_scans(
    state: ListState,
    now: datetime,
    *,
    full_scan_every: timedelta | None,
    overlap: timedelta,
    force_full: bool = False,
) -> tuple[ScanSpec, ...]:
    """Full when forced, never done, due, or incremental polling is off; else the pair."""
    mark = next_mark(state.high_water_mark, None, latest=latest_usable(now))
    last_full = state.last_full_scan_at
    # A last full scan in our future means the clock went back: waiting for it would
    # stop full scans for as long, so one is due now.
    due = (
        full_scan_every is None
        or last_full is None
        or mark is None
        or not last_full <= now < last_full + full_scan_every
    )
    if force_full or due:
        return FULL
    assert mark is not None  # narrowed by `due`
    # The mark is the newest date Listrak itself reported, so the window never depends on
    # our clock or on the zone Listrak's naive dates are in; the overlap covers contacts
    # written behind a running scan and the repeated hour when Eastern time leaves DST.
    since = mark - overlap
    return (
        ScanSpec(subscribed=True, start_date=since, use_original_subscribe_date=False),
        ScanSpec(subscribed=False, start_date=since),
    )


def next_mark(
    old: datetime | None, newest: datetime | None, *, latest: datetime
) -> datetime | None:
    """The mark after a complete scan: never backwards, and never a date yet to come.

    A mark already past `latest` (stored before such dates were refused) is dropped, so
    the next scan is full and sets it again from dates that can be real.
    """
    usable = [d for d in (old, newest) if d is not None and EARLIEST <= d <= latest]
    return max(usable, default=None)


def _dates(contact: Contact) -> Iterator[datetime]:
    for moment in (contact.subscribe_date, contact.resubscribe_date, contact.unsubscribe_date):
        if moment is not None:
            yield moment.replace(tzinfo=None)


def _all_dates(contacts: Iterable[Contact]) -> list[datetime]:
    # Comprehensions, not a generator per contact: a scan reads a million contacts' dates.
    moments = [
        moment
        for c in contacts
        for moment in (c.subscribe_date, c.resubscribe_date, c.unsubscribe_date)
        if moment is not None
    ]
    return [m if m.tzinfo is None else m.replace(tzinfo=None) for m in moments]


def newest_date(
    contacts: Iterable[Contact], current: datetime | None, *, latest: datetime
) -> datetime | None:
    """The newest usable subscribe, re-subscribe or unsubscribe date among these and `current`."""
    usable = [d for d in _all_dates(contacts) if EARLIEST <= d <= latest]
    newest = max(usable, default=None)
    if newest is None or (current is not None and current >= newest):
        return current
    return newest


def future_dated(contacts: Sequence[Contact], latest: datetime) -> list[Contact]:
    """Contacts carrying a date after `latest`: synced, but their dates steer nothing."""
    if max(_all_dates(contacts), default=latest) <= latest:
        return []
    return [c for c in contacts if any(d > latest for d in _dates(c))]
