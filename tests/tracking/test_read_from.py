"""Where a date-filtered read starts after its mark: overlapped, and never past a fall-back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from listrak_source.tracking.dates import read_from, window_start

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


_ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Antarctica/Troll", "UTC"]
_DAYS = [datetime(2026, 11, 1, 1, 30), datetime(2026, 3, 29, 1, 30), datetime(2026, 4, 5, 2)]


@example("America/New_York", datetime(2026, 11, 1, 1, 30), 1800, 6 * 3600, 0)
@example("America/New_York", datetime(2026, 11, 1, 1, 30), 5400, 6 * 3600, 0)
@given(
    st.sampled_from(_ZONES),
    st.sampled_from(_DAYS),
    st.integers(-8 * 3600, 8 * 3600),
    st.integers(0, 8 * 3600),
    st.integers(0, 6 * 3600),
)
def test_a_window_starts_no_later_than_the_mark_less_the_overlap_and_holds_what_follows(
    name: str, day: datetime, shift: int, overlap_s: int, after: int
) -> None:
    """Whatever the zone and its changes: the start is never later than `mark - overlap`,
    and every moment from `overlap` before the mark's on (either one of a repeated wall
    time) names a naive date at or after it."""
    where, overlap = ZoneInfo(name), timedelta(seconds=overlap_s)
    mark = day + timedelta(seconds=shift)
    start = window_start(mark, overlap, where)
    assert start <= mark - overlap
    for fold in (0, 1):
        moment = mark.replace(tzinfo=where, fold=fold).astimezone(UTC)
        if moment.astimezone(where).replace(tzinfo=None) != mark:
            continue  # a wall time the zone skips
        later = (moment - overlap + timedelta(seconds=after)).astimezone(where)
        assert later.replace(tzinfo=None) >= start
