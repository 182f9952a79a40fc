"""The Listrak Email API v1 client the poller reads subscribers through.

GETs, and one write: the bulk profile-field route, which sets field values and never a
subscription. Contacts are never POSTed, since that can create or re-subscribe them.
One request is in flight at a time, request starts are paced, and 429s, 5xx answers and
connection errors are retried with jittered backoff before anything is raised.
"""

from __future__ import annotations

import contextlib
import json
import random as _random
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import httpx
import orjson

from ..errors import (
    BetaRouteError,
    ConfigError,
    ListrakAuthError,
    ListrakError,
    ListrakProtocolError,
    UnknownListError,
)
from ..records import Contact, Page, Pieces, RawPage, Reject
from .activity import ActivityReads
from .auth import ClientCredentialsAuth
from .contacts import PARSE_VERSION, parse_contact, parse_page
from .deadline import DeadlineTransport
from .pacing import Pacer
from .pieces import decode, digests, split_page
from .repeats import REPEATED_PAGES, RepeatWatch
from .retry import Backoff, ClientStats, Retrier, describe, envelope

__all__ = ["MAX_FIELD_IDS", "MAX_PAGE_SIZE", "InvalidSettingError", "ListrakClient"]

MAX_PAGE_SIZE = 5000
MAX_FIELD_IDS = 30
START_CURSOR = "Start"
BETA_REFUSAL = "ERROR_INTEGRATION_CANNOT_ACCESS_BETA_ROUTE"
# Listrak's own answer to a valid route naming a resource it has not: for a single read,
# no such contact. A 404 without it (a gateway's page, an unknown route) says nothing.
NOT_FOUND = "ERROR_UNABLE_TO_LOCATE_RESOURCE"
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Answers that concern the account or the service, not the contact asked about.
_NOT_ABOUT_THE_CONTACT = frozenset({401, 403, 429})
_JSON_BODY = {"Content-Type": "application/json"}
_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S"


class InvalidSettingError(ConfigError, ValueError):
    """A client or scan argument Listrak would reject; raised before any request is sent."""


class ScanOptions(TypedDict, total=False):
    """Which contacts a scan of a list reads (see ListrakClient.iter_raw_pages)."""

    subscribed: bool
    field_ids: Sequence[int]
    page_size: int
    start_date: datetime | None
    end_date: datetime | None
    use_original_subscribe_date: bool | None


class ListrakClient(ActivityReads):
    """Reads lists, profile fields and subscriber pages from the Listrak Email API.

    Not thread-safe by design: the worker keeps one request in flight, so the token cache
    and the pace need no locks. Give each thread its own client.
    """

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        base_url: str,
        auth_url: str,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_retry_after: float = 300.0,
        requests_per_second: float = 2.0,
        max_pages: int = 100_000,
        max_empty_pages: int = 100,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
    ) -> None:
        _check_client_args(timeout, max_attempts, max_retry_after, requests_per_second)
        for url in (base_url, auth_url):
            _check_url(url)
        if min(max_pages, max_empty_pages) < 1:
            raise InvalidSettingError("max_pages and max_empty_pages must be at least 1")
        # A list that keeps answering with fresh cursors (empty pages, say) must end.
        self._max_pages, self._max_empty_pages = max_pages, max_empty_pages
        self.stats = ClientStats()
        self._retrier = Retrier(
            max_attempts=max_attempts,
            backoff=Backoff(base=backoff_base, maximum=backoff_max, random=random),
            max_retry_after=max_retry_after,
            stats=self.stats,
            sleep=sleep,
        )
        self._pacer = Pacer(1.0 / requests_per_second, clock=clock, sleep=sleep)
        self._auth = ClientCredentialsAuth(
            client_id=client_id,
            client_secret=client_secret,
            auth_url=auth_url,
            clock=clock,
            on_token=self._count_token,
        )
        self._auth_endpoint = f"POST {httpx.URL(auth_url).path}"
        self._http = httpx.Client(
            base_url=base_url,
            auth=self._auth,
            timeout=timeout,
            transport=transport or DeadlineTransport(timeout),
            headers={"Accept": "application/json", "User-Agent": "listrak-source"},
            event_hooks={"request": [self._before_request]},
        )

    def __repr__(self) -> str:
        return f"ListrakClient(base_url={str(self._http.base_url)!r}, auth={self._auth!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ListrakClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def check_credentials(self) -> None:
        """Fetch a token now, so bad credentials surface at startup rather than mid-run."""
        self._retrier.call(self._auth_endpoint, self._fetch_token)

    def get_lists(self) -> list[dict[str, Any]]:
        return _objects(self._get("/List"), "GET /List")

    def get_list(self, list_id: int) -> dict[str, Any]:
        path = f"/List/{list_id}"
        data = self._get(path, list_id=list_id).get("data")
        if not isinstance(data, dict):
            raise ListrakProtocolError(f"GET {path} returned no list object")
        return data

    def get_profile_fields(self, list_id: int) -> dict[int, str]:
        """segmentationFieldId -> name; Listrak has no single route for all of a list's fields."""
        fields: dict[int, str] = {}
        for path, item in self._field_items(list_id):
            name = item.get("segmentationFieldName")
            if not isinstance(name, str):
                raise ListrakProtocolError(f"GET {path} returned a field without a name")
            fields[_int(item, "segmentationFieldId", path)] = name
        return fields

    def _field_items(self, list_id: int) -> Iterator[tuple[str, dict[str, Any]]]:
        """(route, field object) of every profile field of the list, group by group."""
        groups_path = f"/List/{list_id}/SegmentationFieldGroup"
        for group in _objects(self._get(groups_path, list_id=list_id), f"GET {groups_path}"):
            group_id = _int(group, "segmentationFieldGroupId", groups_path)
            path = f"{groups_path}/{group_id}/SegmentationField"
            for item in _objects(self._get(path), f"GET {path}"):
                yield path, item

    def get_field_types(self, list_id: int) -> dict[int, str]:
        """segmentationFieldId -> dataType (CheckBox, RadioButton, Text, ...) of a list's fields."""
        return {
            _int(item, "segmentationFieldId", path): str(item.get("dataType") or "")
            for path, item in self._field_items(list_id)
        }

    def post_profile_fields(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> None:
        """Set profile-field values of these contacts; Listrak applies them in an import later.

        Raises ListrakError with status 400 for a body Listrak refused (a contact in it may be
        at fault), BetaRouteError when the integration may not use the route, and
        ListrakUnavailableError once retries on 429s, 5xx answers and timeouts ran out.
        """
        path = f"/List/{list_id}/Contact/SegmentationField"
        endpoint = f"POST {path}"
        body = orjson.dumps(list(contacts))
        try:
            response = self._retrier.call(
                endpoint, lambda: self._http.post(path, content=body, headers=_JSON_BODY)
            )
        except ListrakAuthError as exc:
            raise (_beta_refused(list_id) if exc.code == BETA_REFUSAL else exc) from None
        if not response.is_success:  # a 3xx (httpx follows none) is no answer either
            if envelope(response)[0] == BETA_REFUSAL:
                raise _beta_refused(list_id)
            raise _api_error(response, endpoint, list_id)

    def iter_pages(self, list_id: int, **options: Unpack[ScanOptions]) -> Iterator[Page]:
        """Every page of one scan, parsed (see `iter_raw_pages` for the options)."""
        return map(self.parse, self.iter_raw_pages(list_id, **options))

    def iter_raw_pages(
        self,
        list_id: int,
        *,
        subscribed: bool = True,
        field_ids: Sequence[int] = (),
        page_size: int = MAX_PAGE_SIZE,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        use_original_subscribe_date: bool | None = None,
    ) -> Iterator[RawPage]:
        """Every page of one scan as Listrak sent it (see `parse`); arguments are checked
        now, requests start on iteration."""
        params: dict[str, str] = {
            "subscriptionState": "Subscribed" if subscribed else "Unsubscribed",
            "count": str(_page_size(page_size)),
        }
        if ids := _field_ids(field_ids):
            params["segmentationFieldIds"] = ",".join(map(str, ids))
        if start_date is not None:
            params["startDate"] = _format_date(start_date, "start_date")
        if end_date is not None:
            params["endDate"] = _format_date(end_date, "end_date")
        if use_original_subscribe_date is not None:
            params["useOriginalSubscribeDate"] = str(use_original_subscribe_date).lower()
        return self._scan(list_id, params)

    def get_contact(
        self, list_id: int, email: str, *, field_ids: Sequence[int] = ()
    ) -> Contact | Reject | None:
        """One contact of the list whatever its state; None when Listrak says it has no such
        contact; a Reject about `email` when Listrak refuses this one read (a 4xx other than
        its not-found), which says nothing of the contact. Failures of the account or the
        service (401, 403, retries run out) are raised: they are no answer about anyone."""
        params = (
            {"segmentationFieldIds": ",".join(map(str, ids))}
            if (ids := _field_ids(field_ids))
            else {}
        )
        # The address stays out of every message and log line: they name the route instead.
        label = f"GET /List/{list_id}/Contact/{{email}}"
        path = f"/List/{list_id}/Contact/{quote(email, safe='@')}"
        try:
            body = self._get(path, params, label=label)
        except ListrakError as exc:
            answer = _status_and_code(exc)
            if exc.status == 404 and exc.code == NOT_FOUND:
                return None
            if _refused_read(exc):
                return Reject(reason=f"Listrak refused the read: {answer}", email=email)
            exc.args = (f"Listrak answered {answer or 'nothing usable'} to {label}",)
            raise
        return parse_contact(body.get("data"))

    @staticmethod
    def parse(page: RawPage) -> Page:
        """A page's contacts checked: each a Contact, or a Reject that says what was wrong.

        The page's JSON is let go here, though the raw page may still be referred to (the
        scan's generator holds it until its next request): it is several times the size
        of what it becomes.
        """
        data = page.data if page.pieces is None else _contacts_of(page.content)
        parsed = parse_page(data, page.next_cursor, scanned=page.state)
        page.release()
        return parsed

    @staticmethod
    def digest(page: RawPage, context: str) -> None:
        """Count the digests of a page split into pieces (see `parse_unknown`); `context`
        names what besides its bytes decides what a contact becomes on the list. So does
        the state its scan asked for, which a contact that names none is in: the same
        bytes are a subscriber in one scan and not in the other. Subscribed scans' digests
        name it by leaving it out, as they did before a null state took the scan's."""
        if page.pieces is not None and page.digests is None:
            scanned = "" if page.state else "\0Unsubscribed"
            page.digests = digests(page.pieces, f"{PARSE_VERSION}\0{context}{scanned}".encode())

    @staticmethod
    def parse_unknown(page: RawPage, known: Sequence[int]) -> Page | None:
        """The page's contacts whose `known` is 0, checked, each with its digest; None when
        they do not decode one by one, and the page is to be parsed whole (`parse`). The
        page is kept, to be asked again: `release` it when done."""
        if page.pieces is None or page.digests is None:
            raise ValueError("only a page split into pieces, with their digests, has unknowns")
        data = decode(page.pieces, known)
        if data is None:
            return None
        digests = [d for d, k in zip(page.digests, known, strict=True) if not k]
        return parse_page(data, page.next_cursor, digests, scanned=page.state)

    def _scan(self, list_id: int, params: dict[str, str]) -> Iterator[RawPage]:
        path = f"/List/{list_id}/Contact"
        cursor: str | None = START_CURSOR
        seen = {START_CURSOR}
        pages = empty = 0
        repeats = RepeatWatch()
        while cursor is not None:
            page = self._get_page(path, {**params, "cursor": cursor}, list_id)
            page.state = params["subscriptionState"] == "Subscribed"
            cursor = page.next_cursor
            pages += 1
            empty = 0 if page.size else empty + 1
            if cursor is not None:
                self._check_progress(path, cursor, seen, pages, empty)
                _check_repeats(path, repeats.page(page))
                seen.add(cursor)
            yield page

    def _get_page(self, path: str, params: Mapping[str, str], list_id: int) -> RawPage:
        """A page of contacts, split into each one's bytes when they split cleanly."""
        content = self._fetch(path, params, list_id=list_id)
        pieces = split_page(content)
        if pieces is not None:
            return _page(_body(pieces.envelope, f"GET {path}"), path, pieces, content)
        return _page(_body(content, f"GET {path}"), path)

    def _check_progress(
        self, path: str, cursor: str, seen: set[str], pages: int, empty: int
    ) -> None:
        """A scan that cannot end is an error, not a loop."""
        if cursor in seen:
            # Listrak's cursors are opaque; one we have followed before would loop forever.
            raise ListrakProtocolError(f"GET {path} returned a cursor it had already returned")
        if empty >= self._max_empty_pages:
            raise ListrakProtocolError(
                f"GET {path} returned {empty} empty pages in a row, each with a further "
                "cursor (listrak.max_empty_pages)"
            )
        if pages >= self._max_pages:
            raise ListrakProtocolError(
                f"GET {path} has more than {pages} pages (listrak.max_pages)"
            )

    def _get(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        list_id: int | None = None,
        label: str | None = None,
    ) -> dict[str, Any]:
        endpoint = label or f"GET {path}"
        return _body(self._fetch(path, params, list_id=list_id, label=label), endpoint)

    def _fetch(
        self,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        list_id: int | None = None,
        label: str | None = None,
    ) -> bytes:
        """The body of a successful GET, as sent."""
        endpoint = label or f"GET {path}"
        response = self._retrier.call(endpoint, lambda: self._http.get(path, params=params))
        try:
            if not response.is_success:  # a 3xx (httpx follows none) is no answer either
                raise _api_error(response, endpoint, list_id)
            return response.content
        finally:
            _release(response)

    def _before_request(self, request: httpx.Request) -> None:
        # A hook rather than a loop step so that token renewals and 401 re-sends are paced too.
        self._pacer.wait()
        self.stats.requests += 1

    def _fetch_token(self) -> httpx.Response:
        flow = self._auth.token_flow()
        response = self._http.send(next(flow), auth=None)
        # token_flow has a single yield: this send caches the token (or raises) and then stops.
        with contextlib.suppress(StopIteration):
            flow.send(response)
        return response

    def _count_token(self) -> None:
        self.stats.token_fetches += 1


def _check_client_args(
    timeout: float, max_attempts: int, max_retry_after: float, requests_per_second: float
) -> None:
    if timeout <= 0:
        raise InvalidSettingError(f"timeout must be positive, not {timeout}")
    if max_attempts < 1:
        raise InvalidSettingError(f"max_attempts must be at least 1, not {max_attempts}")
    if max_retry_after < 0:
        raise InvalidSettingError(f"max_retry_after must not be negative, not {max_retry_after}")
    if not requests_per_second > 0:
        raise InvalidSettingError(
            f"requests_per_second must be positive, not {requests_per_second}"
        )


def _check_url(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        # Not echoed: a URL may carry a password.
        raise InvalidSettingError("a Listrak URL is not an http(s) URL with a host name")


def _page_size(page_size: int) -> int:
    valid = isinstance(page_size, int) and not isinstance(page_size, bool)
    if not valid or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidSettingError(f"page_size must be 1..{MAX_PAGE_SIZE}, not {page_size!r}")
    return page_size


def _field_ids(field_ids: Sequence[int]) -> list[int]:
    ids = list(dict.fromkeys(field_ids))
    for field_id in ids:
        if isinstance(field_id, bool) or not isinstance(field_id, int) or field_id <= 0:
            raise InvalidSettingError(f"profile field id {field_id!r} is not a positive integer")
    if len(ids) > MAX_FIELD_IDS:
        raise InvalidSettingError(
            f"Listrak returns at most {MAX_FIELD_IDS} profile fields per scan, {len(ids)} asked"
        )
    return ids


def _format_date(value: datetime, name: str) -> str:
    if value.tzinfo is not None:
        # Listrak's dates carry no offset and their zone is unconfirmed, so guessing a
        # conversion could silently skip or repeat contacts; take the API's own naive form.
        raise InvalidSettingError(f"{name} must be naive, in the form Listrak returns dates")
    return value.strftime(_DATE_FORMAT)


def _page(
    body: dict[str, Any], path: str, pieces: Pieces | None = None, content: bytes = b""
) -> RawPage:
    data, cursor = body.get("data"), body.get("nextPageCursor")
    if not isinstance(data, list):
        raise ListrakProtocolError(f"GET {path} returned a page whose data is not a list")
    if isinstance(cursor, int) and not isinstance(cursor, bool):
        cursor = str(cursor)  # opaque either way; a number is passed back as its digits
    if cursor is not None and not isinstance(cursor, str):
        raise ListrakProtocolError(f"GET {path} returned a nextPageCursor that is not a string")
    return RawPage(data, cursor or None, pieces, content)  # an empty cursor ends the scan too


def _body(content: bytes, endpoint: str) -> dict[str, Any]:
    body = _decoded(content, endpoint)
    if not isinstance(body, dict):
        raise ListrakProtocolError(f"{endpoint} returned JSON that is not an object")
    return body


def _decoded(content: bytes, endpoint: str) -> Any:
    try:
        # A 5,000-contact page is about 1.7 MB; orjson decodes it several times faster.
        return orjson.loads(content)
    except ValueError:
        return _lenient_json(content, endpoint)


def _contacts_of(content: bytes) -> list[Any]:
    """The contacts of a page whose envelope was read already: its data is a list."""
    data: list[Any] = _body(content, "GET a page of contacts")["data"]
    return data


def _lenient_json(content: bytes, endpoint: str) -> Any:
    """What orjson refuses but JSON allows: an escaped lone surrogate in one contact must
    not cost the whole page; parsing refuses that contact instead."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        raise ListrakProtocolError(f"{endpoint} returned a body that is not JSON") from None


def _objects(body: dict[str, Any], endpoint: str) -> list[dict[str, Any]]:
    data = body.get("data")
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ListrakProtocolError(f"{endpoint} returned data that is not a list of objects")
    return data


def _int(item: Mapping[str, Any], name: str, path: str) -> int:
    value = item.get(name)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ListrakProtocolError(f"GET {path} returned {name}={value!r}, not an integer")
    return value


def _beta_refused(list_id: int) -> BetaRouteError:
    return BetaRouteError(
        f"list {list_id}: this Listrak integration may not use the Beta route POST "
        "/List/{id}/Contact/SegmentationField that sets audience fields; ask Listrak to "
        "enable it for the integration",
        code=BETA_REFUSAL,
    )


def _check_repeats(path: str, streak: int) -> None:
    """Fresh cursors to contacts already returned never reach the end of the list."""
    if streak >= REPEATED_PAGES:
        raise ListrakProtocolError(
            f"GET {path}: {streak} pages in a row held only contacts this scan had already "
            "returned, each with a further cursor"
        )


def _release(response: httpx.Response) -> None:
    """Let the page's body go now. An httpx response and its stream refer to each other,
    so a read body waits for the cycle collector, which let 40 pages (47 MB) pile up in one
    activity pass; with the stream replaced, the response goes with its last reference."""
    response.close()
    response.stream = httpx.ByteStream(b"")


def _status_and_code(exc: ListrakError) -> str:
    """ "400 ERROR_UNSAFE_ROUTE": Listrak's own message may quote the address asked about,
    so only the status and a code shaped as Listrak's codes are (a gateway's is not) are
    kept."""
    code = exc.code if exc.code and _CODE.fullmatch(exc.code) else None
    return " ".join(str(part) for part in (exc.status, code) if part)


def _refused_read(exc: ListrakError) -> bool:
    """Whether Listrak refused one read itself (a 4xx about the request), as it may an
    address it deems unsafe in a path, rather than the account or the service failing."""
    status = exc.status
    return (
        type(exc) is ListrakError
        and status is not None
        and 400 <= status < 500
        and status not in _NOT_ABOUT_THE_CONTACT
    )


def _api_error(response: httpx.Response, endpoint: str, list_id: int | None) -> ListrakError:
    code, _ = envelope(response)
    detail = f"Listrak answered {describe(response)} to {endpoint}"
    if response.status_code == 404 and list_id is not None:
        return UnknownListError(
            f"list {list_id} does not exist or these credentials cannot see it ({detail})",
            status=404,
            code=code,
        )
    return ListrakError(detail, status=response.status_code, code=code)
