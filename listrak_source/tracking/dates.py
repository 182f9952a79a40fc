"""Listrak's naive date strings read in the account's zone, sent to Segment as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "America/New_York"


def zone(name: str) -> tzinfo:
    """The IANA zone, or ValueError naming what is wrong (never a traceback for a typo)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name") from None


# Every row of a message carries its sendDate: read each string once.
@lru_cache(maxsize=4096)
def to_utc(raw: str | None, where: tzinfo) -> datetime | None:
    """A Listrak date as aware UTC; None for a missing or unreadable one.

    The repeated hour when clocks fall back reads as its first occurrence (fold 0): Listrak's
    strings cannot say which it meant.
    """
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=where)
    return moment.astimezone(UTC)


def to_listrak(moment: datetime, where: tzinfo) -> datetime:
    """An aware moment as a naive date in Listrak's zone, for a route's date filter."""
    return moment.astimezone(where).replace(tzinfo=None, microsecond=0)


# Longer than any zone's fall-back (Antarctica/Troll moves two hours).
_FALL_BACK_REACH = timedelta(hours=3)


def read_from(mark: str, overlap: timedelta, where: tzinfo) -> datetime | None:
    """The naive start of a read that overlaps the last one by `overlap`, from the newest
    naive date it read; None for an unreadable mark (see `window_start`)."""
    try:
        moment = datetime.fromisoformat(mark.strip()).replace(tzinfo=None)
    except ValueError:
        return None
    return window_start(moment, overlap, where)


def window_start(moment: datetime, overlap: timedelta, where: tzinfo) -> datetime:
    """The naive start of a read that overlaps the last one, whose newest naive date in
    `where` was `moment`, by `overlap`: never later than `moment - overlap`, and never
    later than the naive date of any moment from `overlap` before the mark's on.

    Naive dates run backwards when clocks fall back, and jump when they spring forward:
    a moment just before the mark's can name a wall time an hour earlier, and one soon
    after it an earlier wall time than the mark's. The start reaches back by a fall-back
    soon after the mark, and to the earlier moment a repeated wall time can be, or a change
    in the hour the clocks moved would fall before it and be lost.
    """
    first = min(moment.replace(tzinfo=where, fold=fold).astimezone(UTC) for fold in (0, 1))
    begin = (first - overlap).astimezone(where)
    return min(
        moment - overlap - _fall_back_after(moment.replace(tzinfo=where)),
        begin.replace(tzinfo=None) - _fall_back_after(begin),
    )


def _fall_back_after(aware: datetime) -> timedelta:
    """How far the zone's wall time falls back within _FALL_BACK_REACH after `aware`."""
    later = (aware.astimezone(UTC) + _FALL_BACK_REACH).astimezone(aware.tzinfo)
    offset, later_offset = aware.utcoffset(), later.utcoffset()
    if offset is None or later_offset is None:
        return timedelta(0)
    return max(offset - later_offset, timedelta(0))
