"""The simulator's message, campaign, activity, link and clicker routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.simulator.control import Control

from ._support import LIST, assert_error

MSG = 501
PEOPLE = [f"p{i}@example.com" for i in range(7)]
T0 = datetime(2026, 3, 1, 14, 0, tzinfo=UTC)


def read_all(api: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor: str | None = "Start"
    while cursor is not None:
        response = api.get(path, params={**params, "cursor": cursor})
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        cursor = body["nextPageCursor"]
    return found


def broadcast(lsim: ListrakSimulator) -> None:
    lsim.set_now(T0)
    lsim.add_campaign(LIST, 9, "Spring")
    lsim.send_message(LIST, MSG, PEOPLE, subject="Hello", campaign_id=9, ga_campaign_name="ga")
    lsim.send_message(LIST, 502, PEOPLE[:1], test=True)
    lsim.add_link(LIST, MSG, 42, "https://shop.test/a")


def test_messages_campaigns_and_test_messages(lsim: ListrakSimulator, api: httpx.Client) -> None:
    broadcast(lsim)
    messages = read_all(api, f"/List/{LIST}/Message")
    assert [m["messageId"] for m in messages] == [MSG]
    assert messages[0]["sendDate"] == "2026-03-01T09:00:00"  # naive US Eastern
    assert messages[0]["campaignId"] == 9
    both = read_all(api, f"/List/{LIST}/Message", includeTestMessages="true")
    assert {m["messageId"] for m in both} == {MSG, 502}
    late = read_all(api, f"/List/{LIST}/Message", startDate="2026-03-01T09:00:01")
    assert late == []
    one = api.get(f"/List/{LIST}/Message/{MSG}").json()["data"]
    assert one["googleAnalyticsCampaignName"] == "ga"
    campaigns = api.get(f"/List/{LIST}/Campaign").json()["data"]
    assert campaigns == [{"campaignId": 9, "campaignName": "Spring"}]


def test_rows_are_cumulative(lsim: ListrakSimulator, api: httpx.Client) -> None:
    broadcast(lsim)
    path = f"/List/{LIST}/Message/{MSG}/Activity"
    rows = read_all(api, path, count=3)
    assert len(rows) == len(PEOPLE) and not any(r["open"] for r in rows)
    lsim.advance(timedelta(hours=1))
    lsim.open(LIST, MSG, PEOPLE[0])
    lsim.advance(timedelta(days=2))
    lsim.click(LIST, MSG, 42, PEOPLE[0])
    lsim.convert(LIST, MSG, PEOPLE[0], 25.5)
    lsim.convert(LIST, MSG, PEOPLE[0], 10)
    lsim.bounce(LIST, MSG, PEOPLE[1], "mailbox full")
    lsim.complain(LIST, MSG, PEOPLE[2])
    row = {r["emailAddress"]: r for r in read_all(api, path)}[PEOPLE[0]]
    assert (row["open"], row["click"], row["clickCount"], row["orderTotal"]) == (
        True,
        True,
        1,
        35.5,
    )
    assert row["activityDate"] == "2026-03-01T10:00:00"  # the first activity, never moved
    clickers = read_all(api, f"/List/{LIST}/Message/{MSG}/Link/42/Clicker")
    assert clickers == [{"emailAddress": PEOPLE[0], "clickDate": "2026-03-03T10:00:00"}]
    links = read_all(api, f"/List/{LIST}/Message/{MSG}/Link")
    assert links[0]["linkId"] == 42 and links[0]["linkUrl"] == "https://shop.test/a"
    active = read_all(api, path, dateType="Activity", startDate="2026-03-01T00:00:00")
    assert {r["emailAddress"] for r in active} == set(PEOPLE[:3])


def test_dates_in_a_configured_zone(lsim: ListrakSimulator, api: httpx.Client) -> None:
    lsim.zone = ZoneInfo("Europe/Paris")
    broadcast(lsim)
    (message,) = read_all(api, f"/List/{LIST}/Message")
    assert message["sendDate"] == "2026-03-01T15:00:00"


def test_rows_shift_between_pages(lsim: ListrakSimulator, api: httpx.Client) -> None:
    broadcast(lsim)
    lsim.faults.shift_activity = True
    lsim.faults.offset_cursors = True
    path = f"/List/{LIST}/Message/{MSG}/Activity"

    def during(message_id: int, page: int) -> None:
        if page == 0:  # a row already read changes: it moves behind the rest
            lsim.faults.on_activity_page = None
            lsim.open(LIST, MSG, PEOPLE[0])

    lsim.faults.on_activity_page = during
    seen = [r["emailAddress"] for r in read_all(api, path, count=3)]
    assert len(seen) == len(PEOPLE)  # one row skipped, one read twice
    assert len(set(seen)) == len(PEOPLE) - 1


def test_no_reporting_area(lsim: ListrakSimulator, api: httpx.Client) -> None:
    broadcast(lsim)
    lsim.faults.refuse_reporting = 403
    for route in ("Activity", "Link", "Link/42/Clicker"):
        response = api.get(f"/List/{LIST}/Message/{MSG}/{route}")
        assert_error(response, 403, "ERROR_UNAUTHORIZED")
    assert api.get(f"/List/{LIST}/Message").status_code == 200
    assert api.get(f"/List/{LIST}/Contact").status_code == 200


def test_control_routes_send_a_broadcast_and_make_activity(lsim: ListrakSimulator) -> None:
    lsim.subscribe(LIST, PEOPLE[0])
    lsim.subscribe(LIST, PEOPLE[1])
    with SegmentSink() as sink:
        control = Control(lsim, sink)
        sent = control.broadcast({"list_id": LIST, "message_id": 9, "subject": "Hi"})
        assert sent == {"recipients": 2, "link_id": 1}
        body = {"list_id": LIST, "message_id": 9, "email": PEOPLE[0]}
        control.activity({**body, "action": "click"})
        row = control.activity({**body, "action": "convert", "amount": 12.5})["row"]
        assert (row["open"], row["click"], row["orderTotal"]) == (True, True, 12.5)
        with pytest.raises(ValueError, match="action must be"):
            control.activity({**body, "action": "forward"})
