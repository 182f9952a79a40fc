"""Listrak's naive date strings read in the account's zone, sent to Segment as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_ZONE = "America/New_York"


def zone(name: str) -> tzinfo:
    """The IANA zone, or ValueError naming what is wrong (never a traceback for a typo)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{name!r} is not an IANA time zone name") from None


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
