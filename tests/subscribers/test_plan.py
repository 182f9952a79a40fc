"""Scan planning and the high-water mark: a wrong date from Listrak never blinds polling."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

from hypothesis import assume, example, given
from hypothesis import strategies as st

from listrak_source.records import Contact, ListState
from listrak_source.subscribers.plan import (
    EARLIEST,
    FULL,
    FULL_LEARNING_MARK,
    LISTRAK_ZONE,
    REPORT_AFTER,
    future_dated,
    latest_usable,
    newest_date,
    next_mark,
    plan_scans,
)

NOW = datetime(2026, 10, 1, 12, tzinfo=UTC)
LATEST = latest_usable(NOW)
DAY = {"full_scan_every": timedelta(hours=24), "overlap": timedelta(hours=2)}
MARK = datetime(2026, 10, 1, 7, 30)


def test_a_date_far_in_the_future_does_not_move_the_mark_and_is_reported() -> None:
    future = Contact("f@x.io", True, subscribe_date=datetime(2099, 1, 1))
    normal = Contact("n@x.io", True, subscribe_date=MARK)
    assert newest_date([future, normal], None, latest=LATEST) == MARK
    assert future_dated([future, normal], LATEST) == [future]


def test_a_date_a_few_hours_ahead_of_our_clock_never_moves_the_mark() -> None:
    # Ten hours after our clock's UTC: as the mark it would start the next incremental
    # window in Listrak's future and miss every change made meanwhile.
    ahead = Contact("a@x.io", True, subscribe_date=NOW.replace(tzinfo=None) + timedelta(hours=10))
    normal = Contact("n@x.io", True, subscribe_date=MARK)
    assert newest_date([ahead, normal], None, latest=LATEST) == MARK
    assert future_dated([ahead, normal], LATEST) == [ahead]
    assert next_mark(MARK, ahead.subscribe_date, latest=LATEST) == MARK
    # Our clock's UTC is four hours ahead of Listrak's Eastern now: no usable mark either.
    at_our_utc = Contact("c@x.io", True, subscribe_date=NOW.replace(tzinfo=None))
    assert newest_date([at_our_utc], None, latest=LATEST) is None
    eastern_now = datetime(2026, 10, 1, 8, 0)
    assert eastern_now == LATEST
    at_listrak_now = Contact("e@x.io", True, subscribe_date=eastern_now)
    assert newest_date([at_listrak_now], None, latest=LATEST) == eastern_now
    assert future_dated([at_our_utc, at_listrak_now], LATEST) == [at_our_utc]


def test_a_date_before_any_real_subscription_is_ignored() -> None:
    ancient = Contact("o@x.io", True, subscribe_date=datetime(1, 1, 1))
    assert newest_date([ancient], None, latest=LATEST) is None


def test_a_mark_in_the_future_is_dropped_and_a_full_scan_planned() -> None:
    wrong = datetime(2099, 1, 1)
    assert next_mark(wrong, MARK, latest=LATEST) == MARK
    assert next_mark(wrong, None, latest=LATEST) is None
    assert next_mark(MARK, MARK - timedelta(hours=1), latest=LATEST) == MARK
    state = ListState(last_full_scan_at=NOW - timedelta(hours=1), high_water_mark=wrong)
    # Whose first pages are decoded, not recognized: their dates set the mark again.
    assert plan_scans(state, NOW, **DAY) == FULL_LEARNING_MARK
    assert FULL_LEARNING_MARK[0].full and FULL_LEARNING_MARK[0].learns_mark


def test_a_last_full_scan_in_our_future_makes_a_full_scan_due() -> None:
    # The clock was set back: "24 h since the last full scan" would never come.
    state = ListState(last_full_scan_at=NOW + timedelta(days=30), high_water_mark=MARK)
    assert plan_scans(state, NOW, **DAY) == FULL


# The rule the fast paths must keep, written the plain way: every date, naive, in range.
def _reference_newest(
    contacts: list[Contact], current: datetime | None, latest: datetime
) -> datetime | None:
    newest = current
    for contact in contacts:
        for moment in (contact.subscribe_date, contact.resubscribe_date, contact.unsubscribe_date):
            naive = None if moment is None else moment.replace(tzinfo=None)
            if naive is not None and EARLIEST <= naive <= latest:
                newest = naive if newest is None or naive > newest else newest
    return newest


def _reference_future(contacts: list[Contact], latest: datetime) -> list[Contact]:
    limit = latest + REPORT_AFTER
    dated = [(c, (c.subscribe_date, c.resubscribe_date, c.unsubscribe_date)) for c in contacts]
    return [c for c, dates in dated if any(d and d.replace(tzinfo=None) > limit for d in dates)]


# Around every edge the rule has: year 1, 1970, Listrak's now, an hour after it, 2099.
_EDGES = [datetime(1, 1, 1), EARLIEST, LATEST, LATEST + REPORT_AFTER, datetime(2099, 1, 1)]
_moments = st.one_of(
    st.none(),
    st.sampled_from(_EDGES),
    st.builds(
        lambda edge, seconds: edge + timedelta(seconds=seconds),
        st.sampled_from(_EDGES[1:4]),
        st.integers(-3, 3),
    ),
    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1)),
)
_aware = st.builds(
    lambda moment, hours: moment.replace(tzinfo=timezone(timedelta(hours=hours))),
    st.sampled_from(_EDGES[1:4]),
    st.integers(-12, 12),
)
_contacts = st.lists(
    st.builds(
        lambda dates: Contact("c@x.io", True, MappingProxyType({}), *dates),
        st.tuples(*[st.one_of(_moments, _aware) if i == 1 else _moments for i in range(3)]),
    ),
    max_size=6,
)


@given(_contacts, st.one_of(st.none(), st.sampled_from(_EDGES[1:3])))
def test_a_page_s_dates_give_the_mark_and_the_report_the_plain_rule_gives(
    contacts: list[Contact], current: datetime | None
) -> None:
    assert newest_date(contacts, current, latest=LATEST) == _reference_newest(
        contacts, current, LATEST
    )
    assert future_dated(contacts, LATEST) == _reference_future(contacts, LATEST)


# Around the days Eastern time leaves and enters DST, and an ordinary one.
_TRANSITIONS = [datetime(2026, 11, 1, 1, 30), datetime(2026, 3, 8, 2, 30), datetime(2026, 7, 1)]


@example(datetime(2026, 11, 1, 1, 30), 600, 600, 0, 2400)  # in the hour repeated
@example(datetime(2026, 3, 8, 2, 30), 1800, 1, 0, 0)  # a second before the clocks jumped
@given(
    st.sampled_from(_TRANSITIONS),
    st.integers(-6 * 3600, 6 * 3600),
    st.integers(0, 3 * 3600),
    st.sampled_from([0, 1]),
    st.integers(0, 6 * 3600),
)
def test_an_incremental_window_holds_every_change_made_after_the_mark_less_the_overlap(
    day: datetime, shift: int, overlap_s: int, fold: int, after: int
) -> None:
    """In Listrak's naive Eastern dates, whatever the overlap: a change made as little as
    `overlap` before the mark's moment (either moment of a repeated hour) is in the window.
    With an overlap under an hour, one made in the hour repeated when DST ends fell out."""
    mark = (day + timedelta(seconds=shift)).replace(microsecond=0)
    overlap = timedelta(seconds=overlap_s)
    state = ListState(last_full_scan_at=NOW - timedelta(hours=1), high_water_mark=mark)
    since = plan_scans(state, NOW + timedelta(days=400), full_scan_every=timedelta(days=999),
                       overlap=overlap)[0].start_date  # fmt: skip
    assert since is not None
    moment = mark.replace(tzinfo=LISTRAK_ZONE, fold=fold).astimezone(UTC)
    # A wall time the spring-forward gap skips is no date an Eastern clock gives.
    assume(moment.astimezone(LISTRAK_ZONE).replace(tzinfo=None) == mark)
    change = moment - overlap + timedelta(seconds=after)
    assert change.astimezone(LISTRAK_ZONE).replace(tzinfo=None) >= since
