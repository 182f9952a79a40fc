"""The message, campaign, activity, link and clicker routes of Listrak's Email API v1.

The activity, link and clicker routes need the integration's Reporting area: with
`faults.refuse_reporting` set they answer that status (403 unless told 401) while every
other route works.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from ._activity import ActivityData, SimMessage
from ._faults import ListrakFaults
from ._http import HttpError, Request, Response, json_response
from ._paging import Cursor, count_param, date_param, decode_cursor, encode_cursor
from ._store import ListData

_JSON = [("Content-Type", "application/json; charset=utf-8")]


def _scope(req: Request) -> int:
    """What binds a cursor to the route and the resource it pages."""
    return zlib.crc32(req.path.lower().rstrip("/").encode())


def _params(req: Request) -> dict[str, str]:
    # ASP.NET binds query parameters case-insensitively.
    return {k.lower(): v for k, v in req.query.items()}


def _cursor(req: Request, params: Mapping[str, str], offset: bool) -> Cursor:
    raw = params.get("cursor") or "Start"
    return Cursor(0, 0, offset) if raw == "Start" else decode_cursor(raw, _scope(req), False)


def _next(req: Request, cursor: Cursor, position: int | None) -> bytes:
    if position is None:
        return b"null"
    onward = Cursor(cursor.page + 1, position, cursor.offset)
    return b'"%s"' % encode_cursor(_scope(req), False, onward).encode()


def _page(req: Request, items: list[bytes], count: int) -> Response:
    """Offset paging over a small, settled list (messages, links, clickers)."""
    params = _params(req)
    cursor = _cursor(req, params, offset=True)
    picked = items[cursor.position : cursor.position + count]
    end = cursor.position + len(picked)
    onward = _next(req, cursor, end if end < len(items) else None)
    body = b'{"status":200,"nextPageCursor":%s,"data":[%s]}' % (onward, b",".join(picked))
    return Response(200, body, list(_JSON))


def _in_window(value: str | None, start: str | None, end: str | None) -> bool:
    if start is None and end is None:
        return True
    if value is None:
        return False
    return (start is None or value >= start) and (end is None or value < end)


class ActivityRoutes(ActivityData):
    """Route handlers over ActivityData, mixed into the simulator."""

    faults: ListrakFaults

    def shift_changed(self) -> bool:
        """Whether a changed row moves to the end of its message's order."""
        return self.faults.shift_activity

    def _reporting(self) -> None:
        status = self.faults.refuse_reporting
        if status is not None:
            raise HttpError(
                status,
                "The integration does not have access to this resource.",
                "ERROR_UNAUTHORIZED",
            )

    def _message_of(self, lst: ListData, raw: str) -> SimMessage:
        with self.lock:
            msg = self.messages.get(lst.list_id, {}).get(int(raw)) if raw.isdigit() else None
        if msg is None:
            raise HttpError(404, f"Unable to locate message {raw}.")
        return msg

    def _get_messages(self, req: Request, lst: ListData) -> Response:
        params = _params(req)
        start, end = date_param(params, "startDate"), date_param(params, "endDate")
        tests = params.get("includetestmessages", "false").lower() == "true"
        with self.lock:
            items = [
                _dumps(m.json())
                for m in self.messages.get(lst.list_id, {}).values()
                if (tests or not m.test) and _in_window(m.send_date, start, end)
            ]
        return _page(req, items, count_param(params))

    def _get_message(self, req: Request, lst: ListData, message: str) -> Response:
        msg = self._message_of(lst, message)
        return json_response(200, {"status": 200, "data": msg.json(extended=True)})

    def _get_campaigns(self, req: Request, lst: ListData) -> Response:
        with self.lock:
            campaigns = dict(self.campaigns.get(lst.list_id, {}))
        data = [{"campaignId": k, "campaignName": v} for k, v in campaigns.items()]
        return json_response(200, {"status": 200, "data": data})

    def _get_links(self, req: Request, lst: ListData, message: str) -> Response:
        self._reporting()
        msg = self._message_of(lst, message)
        with self.lock:
            items = [
                _dumps(
                    {
                        "linkId": link.link_id,
                        "linkDescription": link.description,
                        "linkUrl": link.url,
                        "clickCount": len(link.clickers),
                    }
                )
                for link in msg.links.values()
            ]
        return _page(req, items, count_param(_params(req)))

    def _get_clickers(self, req: Request, lst: ListData, message: str, link: str) -> Response:
        self._reporting()
        msg = self._message_of(lst, message)
        params = _params(req)
        start, end = date_param(params, "startDate"), date_param(params, "endDate")
        with self.lock:
            found = msg.links.get(int(link)) if link.isdigit() else None
            if found is None:
                raise HttpError(404, f"Unable to locate link {link}.")
            items = [
                _dumps({"emailAddress": email, "clickDate": date})
                for email, date in found.clickers
                if _in_window(date, start, end)
            ]
        return _page(req, items, count_param(params))

    def _get_activity(self, req: Request, lst: ListData, message: str) -> Response:
        self._reporting()
        msg = self._message_of(lst, message)
        params = _params(req)
        cursor = _cursor(req, params, offset=self.faults.offset_cursors)
        picked, position = self._select_rows(msg, params, cursor)
        body = b'{"status":200,"nextPageCursor":%s,"data":[%s]}' % (
            _next(req, cursor, position),
            b",".join(picked),
        )
        hook = self.faults.on_activity_page
        if hook is not None:
            hook(msg.message_id, cursor.page)
        return Response(200, body, list(_JSON))

    def _select_rows(
        self, msg: SimMessage, params: Mapping[str, str], cursor: Cursor
    ) -> tuple[list[bytes], int | None]:
        """One page of rows and where the next starts (a seq, or an offset), None at the end."""
        count = count_param(params)
        match = _row_filter(params)
        with self.lock:
            if cursor.offset:
                rows = [r for r in msg.order if match is None or match(r)]
                picked = rows[cursor.position : cursor.position + count]
                end = cursor.position + len(picked)
                return [r.json() for r in picked], end if end < len(rows) else None
            i, n, picked = msg.after(cursor.position if cursor.page else None), len(msg.order), []
            while len(picked) < count and i < n:
                chunk = msg.order[i : i + count - len(picked)]
                i += len(chunk)
                picked += chunk if match is None else [r for r in chunk if match(r)]
            more = i < n and (match is None or any(match(r) for r in msg.order[i:]))
            return [r.json() for r in picked], picked[-1].seq if picked and more else None


def _row_filter(params: Mapping[str, str]) -> Callable[[Any], bool] | None:
    """dateType, startDate, endDate and emailAddress, as one test; None when unfiltered."""
    start, end = date_param(params, "startDate"), date_param(params, "endDate")
    email = params.get("emailaddress", "").strip().lower()
    by_activity = params.get("datetype", "Send").lower() == "activity"
    if start is None and end is None and not email:
        return None

    def match(row: Any) -> bool:
        date = row.activity_date if by_activity else row.send_date
        return _in_window(date, start, end) and (not email or row.email.lower() == email)

    return match


def _dumps(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)
