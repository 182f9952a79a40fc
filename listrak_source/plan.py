"""Pure scan planning: a full scan, or the incremental pair of scans since a high-water mark."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from .records import Contact, ListState, ScanSpec

FULL = (ScanSpec(),)


def plan_scans(
    state: ListState,
    now: datetime,
    *,
    full_scan_every: timedelta | None,
    overlap: timedelta,
    force_full: bool = False,
) -> tuple[ScanSpec, ...]:
    """Full when forced, never done, due, or incremental polling is off; else the pair."""
    due = (
        full_scan_every is None
        or state.last_full_scan_at is None
        or state.high_water_mark is None
        or now - state.last_full_scan_at >= full_scan_every
    )
    if force_full or due:
        return FULL
    assert state.high_water_mark is not None  # narrowed by `due`
    # The mark is the newest date Listrak itself reported, so the window never depends on
    # our clock or on the zone Listrak's naive dates are in; the overlap covers contacts
    # written behind a running scan and the repeated hour when Eastern time leaves DST.
    since = state.high_water_mark - overlap
    return (
        ScanSpec(subscribed=True, start_date=since, use_original_subscribe_date=False),
        ScanSpec(subscribed=False, start_date=since),
    )


def newest_date(contacts: Iterable[Contact], current: datetime | None) -> datetime | None:
    """The newest subscribe, re-subscribe or unsubscribe date among these and `current`."""
    newest = current
    for contact in contacts:
        for moment in (contact.subscribe_date, contact.resubscribe_date, contact.unsubscribe_date):
            naive = moment.replace(tzinfo=None) if moment is not None else None
            if naive is not None and (newest is None or naive > newest):
                newest = naive
    return newest
