"""Where a date-filtered read starts after its mark: overlapped, and never past a fall-back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from listrak_source.tracking.dates import read_from

NEW_YORK = ZoneInfo("America/New_York")


def test_an_ordinary_mark_starts_the_overlap_before_it() -> None:
    assert read_from("2026-06-01T12:00:00", timedelta(hours=6), NEW_YORK) == datetime(2026, 6, 1, 6)


def test_a_mark_just_before_the_fall_back_reaches_over_the_repeated_hour() -> None:
    start = read_from("2026-11-01T01:50:00", timedelta(minutes=10), NEW_YORK)
    assert start == datetime(2026, 11, 1, 0, 40)
    assert start is not None and start < datetime(2026, 11, 1, 1, 5)  # 01:05 EST, read later


def test_a_zone_without_clock_changes_and_an_unreadable_mark() -> None:
    assert read_from("2026-11-01T01:50:00", timedelta(0), UTC) == datetime(2026, 11, 1, 1, 50)
    assert read_from("not a date", timedelta(hours=1), NEW_YORK) is None
