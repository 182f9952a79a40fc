"""The event table as a table: (row before, row after) -> events, and the ids they go under."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listrak_source.tracking.dates import to_utc, zone
from listrak_source.tracking.ids import event_id, key_hash
from listrak_source.tracking.records import (
    BOUNCED,
    CLICKED,
    CONVERTED,
    OPENED,
    SENT,
    SPAM,
    UNSUBSCRIBED,
    ActivityRow,
    Clicker,
    Link,
    Seen,
)
from listrak_source.tracking.table import click_fact, merge, row_facts, unsubscribe_fact

NY = zone("America/New_York")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
SEND = "2026-03-01T09:00:00"
ROW = ActivityRow("Ann@Example.com", send_date=SEND)
OPEN = ROW._replace(open=True, activity_date="2026-03-01T10:30:00")
SEEN = merge(None, ROW)


def events(before: Seen | None, after: ActivityRow) -> list[str]:
    return [f.event for f in row_facts(7, before, after, where=NY, now=NOW)]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (None, ROW, [SENT]),
        (SEEN, ROW, []),
        (None, OPEN, [SENT, OPENED]),
        (SEEN, OPEN, [OPENED]),
        (merge(None, OPEN), OPEN, []),
        # A stale read after a newer one: the flag stays seen.
        (merge(None, OPEN), ROW, []),
        (SEEN, ROW._replace(bounce=True, bounce_reason="mailbox full"), [BOUNCED]),
        (SEEN, ROW._replace(abuse=True), [SPAM]),
        (SEEN, ROW._replace(order_total=25.0), [CONVERTED]),
        (merge(None, ROW._replace(order_total=25.0)), ROW._replace(order_total=25.0), []),
        # A refund sends nothing; the high-water mark stays.
        (merge(None, ROW._replace(order_total=25.0)), ROW._replace(order_total=10.0), []),
        (SEEN, ROW._replace(click=True, click_count=3), []),  # clicks come from clickers
        (SEEN, ROW._replace(send_date="2026-03-05T09:00:00"), [SENT]),  # a new send
        (
            SEEN,
            OPEN._replace(bounce=True, abuse=True, order_total=1.5),
            [OPENED, BOUNCED, SPAM, CONVERTED],
        ),
    ],
)
def test_the_event_table(before: Seen | None, after: ActivityRow, expected: list[str]) -> None:
    assert events(before, after) == expected


def test_each_event_takes_its_own_time() -> None:
    row = OPEN._replace(bounce=True, abuse=True, order_total=40.25)
    at = {f.event: f.at for f in row_facts(7, None, row, where=NY, now=NOW)}
    assert at[SENT] == datetime(2026, 3, 1, 14, 0, tzinfo=UTC)  # EST is UTC-5
    assert at[OPENED] == at[BOUNCED] == datetime(2026, 3, 1, 15, 30, tzinfo=UTC)
    assert at[SPAM] == at[CONVERTED] == NOW  # no Listrak time of their own
    no_activity = ROW._replace(bounce=True)
    (_, bounced) = row_facts(7, None, no_activity, where=NY, now=NOW)
    assert bounced.at == at[SENT]  # activityDate, else sendDate


def test_an_open_takes_activity_date_whatever_else_changed() -> None:
    before = merge(None, ROW._replace(order_total=5.0))
    row = OPEN._replace(order_total=9.0)
    opened = [f for f in row_facts(7, before, row, where=NY, now=NOW) if f.event == OPENED]
    assert opened[0].at == datetime(2026, 3, 1, 15, 30, tzinfo=UTC)


def test_a_conversion_sends_the_increase() -> None:
    before = merge(None, ROW._replace(order_total=50.1))
    (fact,) = row_facts(7, before, ROW._replace(order_total=80.2), where=NY, now=NOW)
    assert fact.extra == {"order_total": 30.1}
    assert isinstance(fact.extra["order_total"], float)


def test_extra_properties() -> None:
    (_, bounce) = row_facts(
        7, None, ROW._replace(bounce=True, bounce_reason="full"), where=NY, now=NOW
    )
    assert bounce.extra == {"bounce_reason": "full"}
    click = click_fact(
        7,
        Link(42, "https://x.test/a"),
        Clicker("Ann@Example.com", "2026-03-02T08:00:00"),
        where=NY,
        now=NOW,
    )
    assert (click.event, click.extra) == (
        CLICKED,
        {"link_id": "42", "link_url": "https://x.test/a"},
    )
    assert click.at == datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
    unsub = unsubscribe_fact(
        5, "Ann@Example.com", "2026-07-02T08:00:00", "Unsubscribe", where=NY, now=NOW
    )
    assert (unsub.event, unsub.extra) == (UNSUBSCRIBED, {"unsubscribe_type": "Unsubscribe"})
    assert unsub.at == datetime(2026, 7, 2, 12, 0, tzinfo=UTC)  # EDT is UTC-4


def test_keys_name_the_fact_not_when_it_was_read() -> None:
    later = datetime(2026, 4, 1, tzinfo=UTC)
    first = row_facts(7, None, OPEN._replace(abuse=True), where=NY, now=NOW)
    again = row_facts(
        7, None, OPEN._replace(abuse=True, email="ANN@example.com"), where=NY, now=later
    )
    assert [f.key for f in first] == [f.key for f in again]
    assert len({f.key for f in first}) == len(first)


def test_ids_are_stable_per_key_and_apart_across_keys() -> None:
    (fact,) = row_facts(7, SEEN, OPEN, where=NY, now=NOW)
    one, other = key_hash("write-key-one"), key_hash("write-key-two")
    assert event_id(one, fact.key) == event_id(key_hash("write-key-one"), fact.key)
    assert event_id(one, fact.key) != event_id(other, fact.key)
    assert len(event_id(one, fact.key)) == 36
    assert "write-key-one" not in one


def test_naive_dates_read_in_the_configured_zone() -> None:
    assert to_utc("2026-01-15T08:00:00", zone("Europe/Paris")) == datetime(
        2026, 1, 15, 7, tzinfo=UTC
    )
    assert to_utc("not a date", NY) is None
    assert to_utc(None, NY) is None
    with pytest.raises(ValueError, match="IANA"):
        zone("Mars/Olympus")
