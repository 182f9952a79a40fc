"""The activity routes: messages, campaigns, each message's activity rows, links and clickers.

Listrak keeps no event feed: activity is a cumulative row per (message, contact), read again
while it can still change. The activity, link and clicker routes need the integration's
Reporting area; without it Listrak refuses them (401 or 403, undocumented) while the contact
routes work, which is told apart here as ReportingAreaError so one list's run can say so.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Protocol

from ..errors import ListrakAuthError, ListrakError, ListrakProtocolError, ReportingAreaError
from ..tracking.records import ActivityPage, ActivityRow, Clicker, Link, MessageInfo

_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"
_REFUSED = frozenset({401, 403})


class _Getter(Protocol):
    def _get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        list_id: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]: ...


class ActivityReads:
    """The activity routes, mixed into the client (one request in flight, paced, retried)."""

    def iter_messages(
        self: _Getter, list_id: int, *, start: datetime | None = None, end: datetime | None = None
    ) -> Iterator[MessageInfo]:
        """Messages sent in [start, end) (naive, Listrak's zone); test messages never."""
        params = {"includeTestMessages": "false", "count": "5000"}
        params.update(_dates(start, end))
        path = f"/List/{list_id}/Message"
        for item in _items(self, path, params, list_id=list_id):
            info = parse_message(item)
            if info is not None and not info.is_test:
                yield info

    def get_message_details(self: _Getter, list_id: int, message_id: int) -> dict[str, Any]:
        """`MessageExtendedSegmentsApplied`: the Google Analytics campaign name and more."""
        data = self._get(f"/List/{list_id}/Message/{message_id}", list_id=list_id).get("data")
        return data if isinstance(data, dict) else {}

    def get_campaigns(self: _Getter, list_id: int) -> dict[int, str]:
        """campaignId -> campaignName."""
        data = self._get(f"/List/{list_id}/Campaign", list_id=list_id).get("data")
        out: dict[int, str] = {}
        for item in data if isinstance(data, list) else []:
            if isinstance(item, dict) and isinstance(item.get("campaignId"), int):
                out[item["campaignId"]] = str(item.get("campaignName") or "")
        return out

    def iter_activity(
        self: _Getter,
        list_id: int,
        message_id: int,
        *,
        page_size: int = 5000,
        acted_only: bool = False,
    ) -> Iterator[ActivityPage]:
        """Every activity row of the message, a page at a time; unreadable rows are left out.

        `acted_only`: rows that show no activity yet (most of a broadcast's, on every read)
        are left out before they are parsed."""
        path = f"/List/{list_id}/Message/{message_id}/Activity"
        for data in _reporting(self, path, {"count": str(page_size)}, list_id):
            items = [item for item in data if _acted(item)] if acted_only else data
            rows = [row for item in items if (row := parse_activity(item)) is not None]
            yield ActivityPage(rows, len(data))

    def get_links(self: _Getter, list_id: int, message_id: int) -> list[Link]:
        """The message's tracked links."""
        path = f"/List/{list_id}/Message/{message_id}/Link"
        links = []
        for data in _reporting(self, path, {"count": "5000"}, list_id):
            links += [link for item in data if (link := parse_link(item)) is not None]
        return links

    def iter_clickers(
        self: _Getter, list_id: int, message_id: int, link_id: int, *, start: datetime | None
    ) -> Iterator[list[Clicker]]:
        """A link's clickers since `start` (naive, Listrak's zone), a page at a time."""
        path = f"/List/{list_id}/Message/{message_id}/Link/{link_id}/Clicker"
        params = {"count": "5000", **_dates(start, None)}
        for data in _reporting(self, path, params, list_id):
            yield [c for item in data if (c := parse_clicker(item)) is not None]


def _dates(start: datetime | None, end: datetime | None) -> dict[str, str]:
    out = {}
    if start is not None:
        out["startDate"] = start.strftime(_DATE_FORMAT)
    if end is not None:
        out["endDate"] = end.strftime(_DATE_FORMAT)
    return out


def _pages(client: _Getter, path: str, params: dict[str, str], list_id: int) -> Iterator[list[Any]]:
    """Each page's data, following cursors to the end; a repeated cursor is an error."""
    cursor: str | None = "Start"
    seen: set[str] = set()
    while cursor is not None:
        body = client._get(path, {**params, "cursor": cursor}, list_id=list_id)
        data, cursor = body.get("data"), body.get("nextPageCursor")
        if not isinstance(data, list):
            raise ListrakProtocolError(f"GET {path} returned a page whose data is not a list")
        if cursor is not None and (not isinstance(cursor, str) or cursor in seen):
            raise ListrakProtocolError(f"GET {path} returned a cursor it cannot follow")
        seen.add(cursor or "")
        yield data


def _items(client: _Getter, path: str, params: dict[str, str], *, list_id: int) -> Iterator[Any]:
    for data in _pages(client, path, params, list_id):
        yield from data


def _reporting(
    client: _Getter, path: str, params: dict[str, str], list_id: int
) -> Iterator[list[Any]]:
    """Pages of a route that needs the Reporting area: a refusal says which area to enable."""
    try:
        yield from _pages(client, path, params, list_id)
    except (ListrakAuthError, ListrakError) as exc:
        if exc.status not in _REFUSED:
            raise
        raise ReportingAreaError(
            f"list {list_id}: Listrak refused the activity routes ({exc.status}): enable the "
            "Reporting area of the Listrak integration to send email activity",
            status=exc.status,
            code=exc.code,
        ) from None


def parse_message(item: Any) -> MessageInfo | None:
    """A `Message`; None for one without an id."""
    if not isinstance(item, dict) or not _is_int(item.get("messageId")):
        return None
    campaign = item.get("campaignId")
    return MessageInfo(
        message_id=item["messageId"],
        send_date=_str(item.get("sendDate")),
        subject=_str(item.get("subject")),
        campaign_id=campaign if _is_int(campaign) and campaign else None,
        status=_str(item.get("messageStatus")),
        is_test=bool(item.get("isTest") or item.get("testMessage")),
    )


def parse_activity(item: Any) -> ActivityRow | None:
    """A `MessageActivity` row; None for one without an address."""
    if not isinstance(item, dict):
        return None
    email = item.get("emailAddress")
    if not isinstance(email, str) or "@" not in email:
        return None
    return ActivityRow(
        email=email.strip(),
        send_date=_str(item.get("sendDate")),
        activity_date=_str(item.get("activityDate")),
        open=item.get("open") is True,
        click=item.get("click") is True,
        bounce=item.get("bounce") is True,
        abuse=item.get("abuse") is True,
        unsubscribe=item.get("unsubscribe") is True,
        click_count=item["clickCount"] if _is_int(item.get("clickCount")) else 0,
        order_total=_number(item.get("orderTotal")),
        bounce_reason=_str(item.get("bounceReason")),
    )


def _acted(item: Any) -> bool:
    """Whether a raw row shows what an event comes of: a flag, or an order."""
    if not isinstance(item, dict):
        return False
    if item.get("open") is True or item.get("bounce") is True or item.get("abuse") is True:
        return True
    total = item.get("orderTotal")
    return bool(total) and _number(total) > 0


def parse_link(item: Any) -> Link | None:
    """A `MessageLink`."""
    if not isinstance(item, dict) or not _is_int(item.get("linkId")):
        return None
    return Link(item["linkId"], _str(item.get("linkUrl")))


def parse_clicker(item: Any) -> Clicker | None:
    """A `MessageLinkClicker`."""
    if not isinstance(item, dict) or not isinstance(item.get("emailAddress"), str):
        return None
    return Clicker(item["emailAddress"].strip(), _str(item.get("clickDate")))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: Any) -> float:
    """orderTotal: a double in the Swagger, an integer in the one public client's schema."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    number = float(value)
    return number if math.isfinite(number) and abs(number) < 1e15 else 0.0
