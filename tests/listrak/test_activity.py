"""The client's activity routes against the simulator: messages, rows, links, clickers, refusal."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from listrak_source.errors import ReportingAreaError
from listrak_source.listrak import ListrakClient
from listrak_source.listrak.activity import _acted, parse_activity
from listrak_source.simulator import ListrakSimulator

LIST, MSG = 1001, 501
PEOPLE = [f"p{i}@example.com" for i in range(5)]


@pytest.fixture
def client(sim: ListrakSimulator) -> Iterator[ListrakClient]:
    sim.add_list(LIST, "Main")
    sim.set_now(datetime(2026, 3, 1, 14, tzinfo=UTC))
    sim.add_campaign(LIST, 9, "Spring")
    sim.send_message(LIST, MSG, PEOPLE, subject="Hi", campaign_id=9, ga_campaign_name="ga-spring")
    sim.send_message(LIST, 502, PEOPLE, test=True)
    sim.add_link(LIST, MSG, 42, "https://shop.test/a")
    with ListrakClient(
        client_id=sim.client_id,
        client_secret=sim.client_secret,
        base_url=sim.base_url,
        auth_url=sim.auth_url,
        requests_per_second=1000,
        max_attempts=2,
        backoff_base=0,
    ) as c:
        yield c


def test_messages_and_their_details(client: ListrakClient) -> None:
    (info,) = client.iter_messages(LIST, start=datetime(2026, 2, 1))
    assert (info.message_id, info.subject, info.campaign_id) == (MSG, "Hi", 9)
    assert info.send_date == "2026-03-01T09:00:00"
    assert list(client.iter_messages(LIST, start=datetime(2026, 3, 2))) == []
    assert client.get_message_details(LIST, MSG)["googleAnalyticsCampaignName"] == "ga-spring"
    assert client.get_campaigns(LIST) == {9: "Spring"}


def test_rows_links_and_clickers(sim: ListrakSimulator, client: ListrakClient) -> None:
    sim.advance(timedelta(hours=2))
    sim.click(LIST, MSG, 42, PEOPLE[1])
    sim.convert(LIST, MSG, PEOPLE[1], 12.5)
    rows = [row for page in client.iter_activity(LIST, MSG, page_size=2) for row in page.rows]
    assert len(rows) == len(PEOPLE)
    (clicked,) = [row for row in rows if row.click]
    assert (clicked.email, clicked.open, clicked.order_total, clicked.click_count) == (
        PEOPLE[1],
        True,
        12.5,
        1,
    )
    acted = list(client.iter_activity(LIST, MSG, page_size=2, acted_only=True))
    assert sum(page.read for page in acted) == len(PEOPLE)
    assert [row.email for page in acted for row in page.rows] == [r.email for r in rows if r.open]
    (link,) = client.get_links(LIST, MSG)
    assert link.link_id == 42 and link.url == "https://shop.test/a"
    pages = list(client.iter_clickers(LIST, MSG, 42, start=datetime(2026, 3, 1)))
    assert [c.email for page in pages for c in page] == [PEOPLE[1]]
    assert list(client.iter_clickers(LIST, MSG, 42, start=datetime(2026, 3, 2))) == [[]]


@pytest.mark.parametrize("status", [401, 403])
def test_no_reporting_area_names_it(
    sim: ListrakSimulator, client: ListrakClient, status: int
) -> None:
    sim.faults.refuse_reporting = status
    with pytest.raises(ReportingAreaError, match="Reporting area") as caught:
        list(client.iter_activity(LIST, MSG))
    assert caught.value.exit_code == 2
    assert list(client.iter_messages(LIST))  # the other routes still work


_RAW = st.fixed_dictionaries(
    {"emailAddress": st.sampled_from(["a@x.io", " B@x.io ", "nope", 7])},
    optional={
        name: st.one_of(st.booleans(), st.none(), st.just("true"), st.just(1))
        for name in ("open", "bounce", "abuse", "click", "unsubscribe")
    }
    | {
        "orderTotal": st.one_of(
            st.none(),
            st.booleans(),
            st.just("12.5"),
            st.integers(-5, 5),
            st.floats(allow_nan=True, allow_infinity=True),
        )
    },
)


@given(item=st.one_of(_RAW, st.none(), st.just([])))
def test_rows_left_out_unparsed_are_exactly_the_rows_that_owe_nothing(item: object) -> None:
    """The filter before parsing keeps a row exactly when its parsed form shows activity."""
    row = parse_activity(item)
    owes = row is not None and (row.open or row.bounce or row.abuse or row.order_total > 0)
    assert _acted(item) or not owes
    assert not _acted(item) or row is None or owes


def test_no_page_body_outlives_its_page(sim: ListrakSimulator, client: ListrakClient) -> None:
    """httpx's response and its stream refer to each other: unless the client lets each body
    go, the pages of a long read wait for the cycle collector, dozens of megabytes at once."""
    gc.collect()
    gc.disable()
    try:
        before = {id(o) for o in _responses()}
        for _ in client.iter_activity(LIST, MSG, page_size=1):
            assert len([o for o in _responses() if id(o) not in before]) <= 1  # the token's
    finally:
        gc.enable()


def _responses() -> list[httpx.Response]:
    return [o for o in gc.get_objects() if isinstance(o, httpx.Response)]
