"""Listrak's Email API v1 on loopback: tokens, lists, profile fields, contact scans, activity."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ._activity_http import ActivityRoutes
from ._faults import Injected, ListrakFaults, TokenBook, valid_token_request
from ._http import (
    App,
    HttpError,
    HttpServer,
    Lifecycle,
    Request,
    RequestRecord,
    Response,
    json_response,
)
from ._imports import BulkItem, BulkRequest, ListImport, field_changes, list_fields, parse_bulk
from ._paging import Cursor, count_param, date_param, decode_cursor, encode_cursor
from ._store import ListData, PageQuery, Store

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


def field_ids(params: Mapping[str, str]) -> frozenset[int]:
    """segmentationFieldIds: at most 30 comma-separated integers."""
    parts = [p.strip() for p in params.get("segmentationfieldids", "").split(",") if p.strip()]
    if len(parts) > 30:
        code = "ERROR_TOO_MANY_SEGMENTATION_FIELDS"
        raise HttpError(400, "No more than 30 segmentation fields may be requested.", code)
    if not all(p.isdigit() for p in parts):
        raise HttpError(400, "segmentationFieldIds must be comma-separated integers.")
    return frozenset(int(p) for p in parts)


def parse_page_query(
    query: Mapping[str, str], list_id: int, offset: bool = False
) -> tuple[PageQuery, int]:
    """The validated scan request and its page number (0 for the first page); a first page
    starts offset paging when `offset` is set, later pages follow their cursor's kind."""
    # ASP.NET binds query parameters and enum values case-insensitively.
    params = {k.lower(): v for k, v in query.items()}
    state = params.get("subscriptionstate", "Subscribed").lower()
    original = params.get("useoriginalsubscribedate", "true").lower()
    if state not in ("subscribed", "unsubscribed") or original not in ("true", "false"):
        raise HttpError(400, "subscriptionState or useOriginalSubscribeDate is not valid.")
    subscribed = state == "subscribed"
    raw = params.get("cursor") or "Start"
    cursor = Cursor(0, 0, offset) if raw == "Start" else decode_cursor(raw, list_id, subscribed)
    q = PageQuery(
        subscribed=subscribed,
        after=None if cursor.offset or raw == "Start" else cursor.position,
        count=count_param(params),
        field_ids=field_ids(params),
        start=date_param(params, "startDate"),
        end=date_param(params, "endDate"),
        use_original=original == "true",
        offset=cursor.position if cursor.offset else None,
    )
    return q, cursor.page


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
        "segmentationFieldName": lst.field_names.get(field_id, f"Field {field_id}"),
        "dataType": lst.field_type(field_id),
    }


def _route(tail: str) -> re.Pattern[str]:
    return re.compile(rf"/email/v1/list{tail}/?", re.IGNORECASE)


_L = "/(?P<list_id>[^/]+)"
_G = f"{_L}/segmentationfieldgroup"
_M = f"{_L}/message"
_BULK = _route(f"{_L}/contact/segmentationfield")
# (path, method, handler); a path served for another method only is a 405.
_ROUTES = [
    (_route(""), "GET", "_get_lists"),
    (_route(_L), "GET", "_get_list"),
    (_route(f"{_L}/contact"), "GET", "_get_contacts"),
    (_BULK, "POST", "_post_field_values"),
    # An email may hold an encoded "/", which arrives decoded.
    (_route(f"{_L}/contact/(?P<email>.+?)"), "GET", "_get_contact"),
    (_route(_G), "GET", "_get_groups"),
    (_route(f"{_G}/(?P<group>[^/]+)"), "GET", "_get_group"),
    (_route(f"{_G}/(?P<group>[^/]+)/segmentationfield"), "GET", "_get_fields"),
    (_route(f"{_L}/campaign"), "GET", "_get_campaigns"),
    (_route(_M), "GET", "_get_messages"),
    (_route(f"{_M}/(?P<message>[^/]+)"), "GET", "_get_message"),
    (_route(f"{_M}/(?P<message>[^/]+)/activity"), "GET", "_get_activity"),
    (_route(f"{_M}/(?P<message>[^/]+)/link"), "GET", "_get_links"),
    (_route(f"{_M}/(?P<message>[^/]+)/link/(?P<link>[^/]+)/clicker"), "GET", "_get_clickers"),
]


def _route_for(req: Request) -> tuple[str, dict[str, str]]:
    """The handler's name and the path's parts, else 404 or 405."""
    other_method = False
    for pattern, method, name in _ROUTES:
        match = pattern.fullmatch(req.path)
        if match is not None and method == req.method:
            return name, match.groupdict()
        other_method = other_method or match is not None
    if other_method:
        raise HttpError(405, f"The requested resource does not support {req.method}.")
    raise HttpError(404, "No HTTP resource was found that matches the request URI.")


_GATEWAY_PAGE = b"<html><body><h1>Not available</h1></body></html>"


def _injected(fault: Injected) -> HttpError:
    message = "Too many requests." if fault.status == 429 else "Simulated failure."
    return HttpError(fault.status, message, retry_after=fault.retry_after)


def _lenient_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


class ListrakSimulator(Store, ActivityRoutes, Lifecycle):
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
        ActivityRoutes.__init__(self)
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.faults = ListrakFaults()
        self.requests: list[RequestRecord] = []
        self.bulk_requests: list[BulkRequest] = []
        self.imports: list[ListImport] = []
        self._pending: list[ListImport] = []
        self.token_requests = 0
        self.stats = PageStats()
        self._tokens = TokenBook(self.faults)
        self._log_lock = threading.Lock()
        # The standalone simulator's /_control/ routes, outside Listrak's API.
        self.control: App | None = None
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
        if path.startswith("/_control/") and self.control is not None:
            return self.control(req)  # changes and outages from outside; see control.py
        try:
            response = self._api(req)
        except HttpError as err:
            response = envelope(err)
        record = RequestRecord(req.method, req.path, dict(req.query), response.status)
        with self._log_lock:
            self.requests.append(record)
            self._record_bulk(req, response.status)
        return response

    def _record_bulk(self, req: Request, status: int) -> None:
        match = _BULK.fullmatch(req.path)
        if match is not None and req.method == "POST":
            body = _lenient_json(req.body)
            self.bulk_requests.append(BulkRequest(match["list_id"], body, status))

    def _api(self, req: Request) -> Response:
        self._apply_imports(due_only=True)
        hook = self.faults.on_request
        if hook is not None:
            hook(req.path)
        fault = self.faults.take_api()
        if fault is not None and fault.plain:
            return Response(fault.status, _GATEWAY_PAGE, [("Content-Type", "text/html")])
        if fault is not None:
            raise _injected(fault)
        if self.faults.reject_auth or not self._tokens.valid(req.headers.get("Authorization")):
            raise HttpError(401, "Authorization has been denied for this request.")
        name, args = _route_for(req)
        lst = self._find_list(args.pop("list_id")) if "list_id" in args else None
        handler: Callable[..., Response] = getattr(self, name)
        return handler(req, lst, **args)

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
        q, page = parse_page_query(req.query, lst.list_id, self.faults.offset_cursors)
        limit = self.faults.die_after_page
        if limit is not None and page >= limit:
            raise HttpError(500, "An unhandled exception occurred.")
        if self.faults.page_delay > 0:
            self._server.stopping.wait(self.faults.page_delay)
        empty_from = self.faults.empty_after_page
        if empty_from is not None and page >= empty_from:
            return self._empty_page(lst, q, page)
        started = time.thread_time()
        data, after, served = self.page(lst.list_id, q)
        cursor = b"null"
        repeat_from = self.faults.repeat_after_page
        if after is not None and repeat_from is not None and page >= repeat_from:
            after = q.offset or q.after or 0  # a fresh cursor to the same contacts again
        if after is not None:
            onward = Cursor(page + 1, after, q.offset is not None)
            cursor = b'"%s"' % encode_cursor(lst.list_id, q.subscribed, onward).encode()
        body = b'{"status":200,"nextPageCursor":%s,"data":%s}' % (cursor, data)
        elapsed = time.thread_time() - started
        with self._log_lock:
            self.stats.pages += 1
            self.stats.contacts += served
            self.stats.seconds += elapsed
        return Response(200, body, list(_JSON), trickle=self.faults.page_trickle)

    def _empty_page(self, lst: ListData, q: PageQuery, page: int) -> Response:
        """No contacts, and a cursor never handed out before: the scan never ends."""
        onward = Cursor(page + 1, q.offset or q.after or 0, q.offset is not None)
        cursor = encode_cursor(lst.list_id, q.subscribed, onward)
        return json_response(200, {"status": 200, "nextPageCursor": cursor, "data": []})

    def _get_contact(self, req: Request, lst: ListData, email: str) -> Response:
        if email.strip().lower() in {e.strip().lower() for e in self.faults.refuse_reads}:
            message = "A potentially dangerous Request.Path value was detected."
            raise HttpError(400, message, "ERROR_UNSAFE_ROUTE")
        ids = field_ids({k.lower(): v for k, v in req.query.items()})
        data = self.contact_json(lst.list_id, email, ids)
        if data is None:
            raise HttpError(404, "Unable to locate a contact with the email address supplied.")
        return Response(200, b'{"status":200,"data":%s}' % data, list(_JSON))

    def _post_field_values(self, req: Request, lst: ListData) -> Response:
        fault = self.faults.take_bulk()
        if fault is not None:
            raise _injected(fault)
        if self.faults.refuse_beta:
            message = "This route is in Beta and not yet generally available for all integrations."
            code = "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE"
            raise HttpError(self.faults.beta_status, message, code)
        content_type = req.headers.get("Content-Type") or ""
        if content_type.split(";")[0].strip().lower() != "application/json":
            code = "ERROR_UNSUPPORTED_CONTENT_TYPE"
            raise HttpError(415, "The Content-Type must be application/json.", code)
        with self.lock:
            fields = list_fields(lst.field_ids, lst.field_types)
        items = parse_bulk(req.body, fields)
        refused = {e.strip().lower() for e in self.faults.refuse_emails}
        for i, item in enumerate(items):
            if item.email.lower() in refused:
                raise HttpError(400, f"An invalid value was supplied for emailAddress of item {i}.")
        self._start_import(lst.list_id, items)
        return json_response(201, {"status": 201, "resourceId": ""})

    def _start_import(self, list_id: int, items: list[BulkItem]) -> None:
        due = self.now() + timedelta(seconds=self.faults.import_delay)
        state = "dropped" if self.faults.drop_imports else "pending"
        with self.lock:
            job = ListImport(len(self.imports) + 1, list_id, items, due, state)
            self.imports.append(job)
            if state == "pending":
                self._pending.append(job)
        self._apply_imports(due_only=True)

    def apply_imports(self) -> int:
        """Apply every pending import now, due or not; returns how many applied."""
        return self._apply_imports(due_only=False)

    def _apply_imports(self, due_only: bool) -> int:
        """Imports apply when a request finds them due on the simulator's clock."""
        if not self._pending:  # every request passes here
            return 0
        now = self.now()
        with self.lock:
            ready: list[ListImport] = []
            waiting: list[ListImport] = []
            for job in self._pending:
                (ready if job.due <= now or not due_only else waiting).append(job)
            self._pending = waiting
            for job in ready:
                self._apply(job)
        return len(ready)

    def _apply(self, job: ListImport) -> None:
        f = self.faults
        park, unsub = f.nonmembers == "apply", f.unsubscribed == "apply"
        types = self.get(job.list_id).field_types
        for item in job.items:
            changes = field_changes(item.values, types, f.checked_value, f.unchecked_value)
            outcome = self.apply_values(job.list_id, item.email, changes, park=park, unsub=unsub)
            job.results[item.email.lower()] = outcome
        job.state = "applied"

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
