"""Listrak's Email API v1 on loopback: OAuth2 tokens, lists, profile fields and contact scans."""

from __future__ import annotations

import base64
import binascii
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from ._faults import ListrakFaults, TokenBook, valid_token_request
from ._http import (
    HttpError,
    HttpServer,
    Lifecycle,
    Request,
    RequestRecord,
    Response,
    json_response,
)
from ._store import ListData, PageQuery, Store

# Three fixed bytes that base64 turns into "+/+/", and 28 bytes in all so it always ends in
# "==": every cursor breaks a client that forgets to URL-encode it.
_CURSOR_MAGIC = b"\xfb\xff\xbf"
_CURSOR = struct.Struct(">BQIQ")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,6})?)?")
_JSON = [("Content-Type", "application/json; charset=utf-8")]
_CODES = {
    400: "ERROR_INVALID_PARAMETER",
    401: "ERROR_UNAUTHORIZED",
    404: "ERROR_UNABLE_TO_LOCATE_RESOURCE",
    405: "ERROR_METHOD_NOT_ALLOWED",
    429: "ERROR_TOO_MANY_REQUESTS",
}


@dataclass(slots=True)
class PageStats:
    """CPU time spent building Contact pages, so a benchmark can tell the fake's share.

    Thread CPU time, not wall time: waiting for the GIL or for other processes is not the
    simulator's cost.
    """

    pages: int = 0
    contacts: int = 0
    seconds: float = 0.0

    @property
    def ms_per_page(self) -> float:
        """Mean CPU time to build one page, in milliseconds."""
        return 1000 * self.seconds / self.pages if self.pages else 0.0


def envelope(err: HttpError) -> Response:
    """Listrak's error body: {status, error, message}."""
    code = err.code or _CODES.get(err.status, "ERROR_UNHANDLED_EXCEPTION")
    body = {"status": err.status, "error": code, "message": str(err)}
    return json_response(err.status, body, err.headers)


def encode_cursor(list_id: int, subscribed: bool, page: int, after: int) -> str:
    """An opaque cursor: resume after order key `after`, as page number `page`."""
    payload = _CURSOR.pack(1, after, page, list_id)
    check = zlib.crc32(payload + bytes([subscribed])).to_bytes(4, "big")
    return base64.b64encode(_CURSOR_MAGIC + payload + check).decode()


def decode_cursor(cursor: str, list_id: int, subscribed: bool) -> tuple[int, int]:
    """(page number, order key) of a cursor this list's scan handed out, else 400."""
    try:
        raw = base64.b64decode(cursor, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    payload, check = raw[3:-4], raw[-4:]
    ok = len(raw) == 7 + _CURSOR.size and raw.startswith(_CURSOR_MAGIC)
    ok = ok and zlib.crc32(payload + bytes([subscribed])).to_bytes(4, "big") == check
    if not ok or _CURSOR.unpack(payload)[3] != list_id:
        raise HttpError(400, "The cursor is not valid.")
    _, after, page, _ = _CURSOR.unpack(payload)
    return page, after


def _date(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name.lower())
    if not value:
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return datetime.fromisoformat(value).strftime("%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise HttpError(400, f"{name} is not a valid date (YYYY-MM-DDTHH:MM:SS).") from None


def _count(params: Mapping[str, str]) -> int:
    value = params.get("count", "1000")
    if not (value.isdigit() and 1 <= int(value) <= 5000):
        raise HttpError(400, "count must be between 1 and 5000.")
    return int(value)


def field_ids(params: Mapping[str, str]) -> frozenset[int]:
    """segmentationFieldIds: at most 30 comma-separated integers."""
    parts = [p.strip() for p in params.get("segmentationfieldids", "").split(",") if p.strip()]
    if len(parts) > 30:
        code = "ERROR_TOO_MANY_SEGMENTATION_FIELDS"
        raise HttpError(400, "No more than 30 segmentation fields may be requested.", code)
    if not all(p.isdigit() for p in parts):
        raise HttpError(400, "segmentationFieldIds must be comma-separated integers.")
    return frozenset(int(p) for p in parts)


def parse_page_query(query: Mapping[str, str], list_id: int) -> tuple[PageQuery, int]:
    """The validated scan request and its page number (0 for the first page)."""
    # ASP.NET binds query parameters and enum values case-insensitively.
    params = {k.lower(): v for k, v in query.items()}
    state = params.get("subscriptionstate", "Subscribed").lower()
    original = params.get("useoriginalsubscribedate", "true").lower()
    if state not in ("subscribed", "unsubscribed") or original not in ("true", "false"):
        raise HttpError(400, "subscriptionState or useOriginalSubscribeDate is not valid.")
    subscribed = state == "subscribed"
    cursor = params.get("cursor") or "Start"
    page, after = (0, None) if cursor == "Start" else decode_cursor(cursor, list_id, subscribed)
    q = PageQuery(
        subscribed=subscribed,
        after=after,
        count=_count(params),
        field_ids=field_ids(params),
        start=_date(params, "startDate"),
        end=_date(params, "endDate"),
        use_original=original == "true",
    )
    return q, page


def _list_json(lst: ListData) -> dict[str, object]:
    return {
        "listId": lst.list_id,
        "listName": lst.name,
        "createDate": lst.created,
        "fromEmail": "news@example.com",
        "fromName": "Example News",
    }


def _group_json(lst: ListData) -> dict[str, object]:
    return {"segmentationFieldGroupId": lst.group_id, "name": "Profile"}


def _field_json(lst: ListData, field_id: int) -> dict[str, object]:
    return {
        "segmentationFieldId": field_id,
        "segmentationFieldGroupId": lst.group_id,
        "segmentationFieldName": f"Field {field_id}",
        "dataType": "Text",
    }


def _route(tail: str) -> re.Pattern[str]:
    return re.compile(rf"/email/v1/list{tail}/?", re.IGNORECASE)


_L = "/(?P<list_id>[^/]+)"
_G = f"{_L}/segmentationfieldgroup"
_ROUTES = [
    (_route(""), "_get_lists"),
    (_route(_L), "_get_list"),
    (_route(f"{_L}/contact"), "_get_contacts"),
    (_route(_G), "_get_groups"),
    (_route(f"{_G}/(?P<group>[^/]+)"), "_get_group"),
    (_route(f"{_G}/(?P<group>[^/]+)/segmentationfield"), "_get_fields"),
]


class ListrakSimulator(Store, Lifecycle):
    """The contact data of Store, served as Listrak's Email API v1 on loopback."""

    def __init__(
        self,
        client_id: str = "sim-client",
        client_secret: str = "sim-secret",
        token_ttl: float = 3599,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.faults = ListrakFaults()
        self.requests: list[RequestRecord] = []
        self.token_requests = 0
        self.stats = PageStats()
        self._tokens = TokenBook(self.faults)
        self._log_lock = threading.Lock()
        self._server = HttpServer(self._app, host, port)

    @property
    def base_url(self) -> str:
        """What the worker configures as listrak.base_url."""
        return f"{self._server.origin}/email/v1"

    @property
    def auth_url(self) -> str:
        """What the worker configures as listrak.auth_url."""
        return f"{self._server.origin}/OAuth2/Token"

    def _app(self, req: Request) -> Response:
        path = req.path.lower().rstrip("/")
        if path == "/oauth2/token":
            return self._token(req)
        if path == "/_sim/stats":  # for benchmarks that run the CLI in another process
            return json_response(200, self.stats_json())
        try:
            response = self._api(req)
        except HttpError as err:
            response = envelope(err)
        record = RequestRecord(req.method, req.path, dict(req.query), response.status)
        with self._log_lock:
            self.requests.append(record)
        return response

    def _api(self, req: Request) -> Response:
        fault = self.faults.take_api()
        if fault is not None:
            message = "Too many requests." if fault.status == 429 else "Simulated failure."
            raise HttpError(fault.status, message, retry_after=fault.retry_after)
        if self.faults.reject_auth or not self._tokens.valid(req.headers.get("Authorization")):
            raise HttpError(401, "Authorization has been denied for this request.")
        for pattern, name in _ROUTES:
            match = pattern.fullmatch(req.path)
            if match is None:
                continue
            if req.method != "GET":
                raise HttpError(405, f"The requested resource does not support {req.method}.")
            args = match.groupdict()
            lst = self._find_list(args.pop("list_id")) if "list_id" in args else None
            handler: Callable[..., Response] = getattr(self, name)
            return handler(req, lst, **args)
        raise HttpError(404, "No HTTP resource was found that matches the request URI.")

    def _find_list(self, raw_id: str) -> ListData:
        with self.lock:
            lst = self.lists.get(int(raw_id)) if raw_id.isdigit() else None
        if lst is None:
            raise HttpError(404, f"Unable to locate list {raw_id}.")
        return lst

    def _get_lists(self, req: Request, lst: None) -> Response:
        with self.lock:
            data = [_list_json(x) for x in self.lists.values()]
        return json_response(200, {"status": 200, "data": data})

    def _get_list(self, req: Request, lst: ListData) -> Response:
        return json_response(200, {"status": 200, "data": _list_json(lst)})

    def _get_contacts(self, req: Request, lst: ListData) -> Response:
        q, page = parse_page_query(req.query, lst.list_id)
        limit = self.faults.die_after_page
        if limit is not None and page >= limit:
            raise HttpError(500, "An unhandled exception occurred.")
        if self.faults.page_delay > 0:
            self._server.stopping.wait(self.faults.page_delay)
        started = time.thread_time()
        data, after, served = self.page(lst.list_id, q)
        cursor = b"null"
        if after is not None:
            cursor = b'"%s"' % encode_cursor(lst.list_id, q.subscribed, page + 1, after).encode()
        body = b'{"status":200,"nextPageCursor":%s,"data":%s}' % (cursor, data)
        elapsed = time.thread_time() - started
        with self._log_lock:
            self.stats.pages += 1
            self.stats.contacts += served
            self.stats.seconds += elapsed
        return Response(200, body, list(_JSON))

    def _get_groups(self, req: Request, lst: ListData) -> Response:
        return json_response(200, {"status": 200, "data": [_group_json(lst)]})

    def _get_group(self, req: Request, lst: ListData, group: str) -> Response:
        self._check_group(lst, group)
        return json_response(200, {"status": 200, "data": _group_json(lst)})

    def _get_fields(self, req: Request, lst: ListData, group: str) -> Response:
        self._check_group(lst, group)
        with self.lock:
            data = [_field_json(lst, fid) for fid in lst.field_ids]
        return json_response(200, {"status": 200, "data": data})

    def _check_group(self, lst: ListData, group: str) -> None:
        if group != str(lst.group_id):
            raise HttpError(404, f"Unable to locate segmentation field group {group}.")

    def _token(self, req: Request) -> Response:
        with self._log_lock:
            self.token_requests += 1
        if req.method != "POST":
            return envelope(HttpError(405, "The token endpoint only supports POST."))
        fault = self.faults.take_token()
        if fault is not None:
            return envelope(HttpError(fault.status, "Simulated token failure."))
        if not valid_token_request(req.body, self.client_id, self.client_secret):
            return json_response(400, {"error": "Invalid Credentials"})
        ttl = self.token_ttl if self.faults.token_ttl is None else self.faults.token_ttl
        token = self._tokens.issue(ttl)
        body = {"access_token": token, "token_type": "bearer", "expires_in": int(ttl)}
        return json_response(200, body)

    def stats_json(self) -> dict[str, object]:
        """Serving statistics and request counts, as JSON-ready data."""
        with self._log_lock:
            return {
                "pages": self.stats.pages,
                "contacts": self.stats.contacts,
                "seconds": self.stats.seconds,
                "ms_per_page": self.stats.ms_per_page,
                "requests": len(self.requests),
                "token_requests": self.token_requests,
            }
