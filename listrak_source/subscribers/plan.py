"""Pure scan planning: a full scan, or the incremental pair of scans since a high-water mark."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta

from ..records import Contact, ListState, ScanSpec
from ..tracking.dates import DEFAULT_ZONE, to_listrak, window_start, zone

FULL = (ScanSpec(),)
# A full scan of a list without a usable mark (see ScanSpec.learns_mark).
FULL_LEARNING_MARK = (ScanSpec(learns_mark=True),)
LISTRAK_ZONE = zone(DEFAULT_ZONE)
# A date later than Listrak's now by more than this is reported: a contact written while
# a long scan runs is dated after its start without being wrong.
REPORT_AFTER = timedelta(hours=1)
# No subscription predates this; older dates (year 1, say) would also overflow the overlap.
EARLIEST = datetime(1970, 1, 1)


def latest_usable(now: datetime) -> datetime:
    """Listrak's own now at `now`: the latest naive date that may move the high-water mark.

    Listrak's dates are naive wall times that look like US Eastern (unconfirmed). A later
    date is wrong, or in a zone ahead of Eastern; either way, as the mark it would start
    the next incremental window in Listrak's future and miss every change until its clock
    caught up. Such a date never moves the mark. If Listrak's zone is ahead of Eastern
    after all, the mark only lags behind its dates, and windows grow by that much.
    """
    return to_listrak(now, LISTRAK_ZONE)


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
        return FULL if mark is not None else FULL_LEARNING_MARK
    assert mark is not None  # narrowed by `due`
    # The mark is the newest date Listrak itself reported, so the window never depends on
    # our clock; the overlap covers contacts written behind a running scan, and the window
    # reaches back by the hour Eastern time repeats when it leaves DST, however short the
    # overlap (the dates look like US Eastern, unconfirmed; elsewhere it only grows).
    since = window_start(mark, overlap, LISTRAK_ZONE)
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
    return [
        d
        for c in contacts
        for d in (c.subscribe_date, c.resubscribe_date, c.unsubscribe_date)
        if d is not None
    ]


def _all_naive_within(dates: list[datetime], earliest: datetime, latest: datetime) -> bool:
    """Whether every date is naive and inside [earliest, latest], as Listrak's always are;
    comparing an aware date with a naive one raises TypeError, which answers no."""
    try:
        return not dates or (earliest <= min(dates) and max(dates) <= latest)
    except TypeError:
        return False


def newest_date(
    contacts: Iterable[Contact], current: datetime | None, *, latest: datetime
) -> datetime | None:
    """The newest usable subscribe, re-subscribe or unsubscribe date among these and `current`."""
    dates = _all_dates(contacts)
    if _all_naive_within(dates, EARLIEST, latest):
        usable = dates  # the whole page at C speed: the usual case
    else:
        naive = (d.replace(tzinfo=None) for d in dates)
        usable = [d for d in naive if EARLIEST <= d <= latest]
    newest = max(usable, default=None)
    if newest is None or (current is not None and current >= newest):
        return current
    return newest


def future_dated(contacts: Sequence[Contact], latest: datetime) -> list[Contact]:
    """Contacts carrying a date well after `latest`: synced, but their dates steer nothing."""
    limit = latest + REPORT_AFTER
    if _all_naive_within(_all_dates(contacts), datetime.min, limit):
        return []
    return [c for c in contacts if any(d > limit for d in _dates(c))]
