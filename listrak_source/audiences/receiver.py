"""The HTTP endpoint Segment's Webhooks (Actions) destination posts audience events to.

Segment retries a 5xx (and 408, 429) for hours but drops the whole batch on any other 4xx,
so a 4xx is reserved for requests that are not ours (401), too big to take (413) or not
JSON (400). An item's content never fails a batch: what cannot be used is acknowledged and
counted. A 200 is answered only after `commit` has kept the batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from ..engage.ingest import Ingest, NotJsonError, collect, decode_items
from ..engage.mapping import Mappings
from ..engage.settings import ReceiverSettings
from ..engage.signing import bearer_matches, signature_matches
from ..logs import Throttle, held_back

log = logging.getLogger(__name__)

Commit = Callable[[Ingest], None]


class ReceiverCounters(Protocol):
    """What the receiver reports, for metrics."""

    def answered(self, status: int) -> None:
        """One request got this status."""

    def ingested(self, ingest: Ingest) -> None:
        """One request's items were committed."""


@dataclass
class Tally:
    """ReceiverCounters kept in memory: the answers by status, and the items by outcome."""

    statuses: Counter[int] = field(default_factory=Counter)
    accepted: int = 0
    ignored: Counter[str] = field(default_factory=Counter)

    def answered(self, status: int) -> None:
        """Count one answer."""
        self.statuses[status] += 1

    def ingested(self, ingest: Ingest) -> None:
        """Count one committed request's items."""
        self.accepted += ingest.accepted
        self.ignored.update(ingest.ignored)


def error_name(exc: BaseException) -> str:
    """Only the exception's type: its message may quote SQL, parameters or emails."""
    return type(exc).__name__


def make_app(
    settings: ReceiverSettings,
    mappings: Mappings,
    commit: Commit,
    *,
    counters: ReceiverCounters | None = None,
    describe_error: Callable[[BaseException], str] = error_name,
) -> Starlette:
    """The receiver as an ASGI app: POST /events, and GET /healthz for probes."""
    endpoint = _Events(settings, mappings, commit, counters or Tally(), describe_error)
    return Starlette(
        routes=[
            Route("/events", endpoint.post, methods=["POST"]),
            Route("/healthz", _healthz, methods=["GET"]),
        ]
    )


async def _healthz(request: Request) -> Response:
    """Answers while the server accepts requests; it touches nothing else."""
    return _reply(200, {"status": "ok"})


# How soon Segment may try again after a 503 for bodies in flight: a commit takes well
# under a second, and Segment's own backoff decides in the end.
RETRY_AFTER_SECONDS = 2


def _reply(status: int, content: object, headers: dict[str, str] | None = None) -> Response:
    extra = dict(headers or {})
    if status == 401:
        extra["WWW-Authenticate"] = "Bearer"
    if status != 200:
        # A refusal may leave the body unread; the connection is not reused after it.
        extra["Connection"] = "close"
    return Response(orjson.dumps(content), status, extra, media_type="application/json")


class ByteBudget:
    """Body bytes held at once across requests, from their reading to their commit's end.

    Only the event loop's thread takes and gives, so no lock is needed.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, size: int) -> bool:
        """Hold `size` more bytes, unless that would pass the limit."""
        if self.held + size > self.limit:
            return False
        self.held += size
        return True

    def give(self, size: int) -> None:
        """Return bytes a request held."""
        self.held -= size


class _Refused(Exception):
    """A request answered before its body was all read: the answer is in `response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response


class _Events:
    """POST /events: authenticate, read within the caps, verify, parse, commit, then answer."""

    def __init__(
        self,
        settings: ReceiverSettings,
        mappings: Mappings,
        commit: Commit,
        counters: ReceiverCounters,
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self._settings = settings
        self._secrets = [s.get_secret_value().encode() for s in settings.secrets]
        self._shared = settings.signing_secrets()
        self._budget = ByteBudget(settings.max_bytes_in_flight)
        self._throttle = Throttle()
        self._mappings = mappings
        self._commit = commit
        self._counters = counters
        self._describe = describe_error

    async def post(self, request: Request) -> Response:
        """Handle one delivery and count its answer."""
        held = _Held(self._budget)
        try:
            response = await self._handle(request, held)
        except _Refused as refused:
            response = refused.response
        finally:
            held.release()
        self._counters.answered(response.status_code)
        return response

    async def _handle(self, request: Request, held: _Held) -> Response:
        if not bearer_matches(request.headers.get("authorization"), self._secrets):
            self._warn("refused a delivery: wrong or missing bearer secret")
            return _reply(401, {"error": "unauthorized"})
        body = await self._read(request, held)
        signature = request.headers.get("x-signature")
        if self._shared and not signature_matches(body, signature, self._shared):
            self._warn("refused a delivery: wrong or missing X-Signature")
            return _reply(401, {"error": "bad signature"})
        return await self._ingest(body)

    async def _read(self, request: Request, held: _Held) -> bytes:
        """The body, read within max_body_bytes, the bytes in flight and body_timeout."""
        cap = self._settings.max_body_bytes
        declared = _declared_length(request)
        if declared is not None and declared > cap:
            raise self._too_large()
        if declared is not None and not held.take(declared):
            raise self._busy()
        try:
            async with asyncio.timeout(self._settings.body_timeout):
                return await self._chunks(request, held, prepaid=declared is not None)
        except TimeoutError:
            self._warn(
                "refused a delivery whose body took over body_timeout (%gs)",
                self._settings.body_timeout,
            )
            raise _Refused(_reply(408, {"error": "body not received in time"})) from None
        except ClientDisconnect:
            raise _Refused(_reply(400, {"error": "client went away"})) from None

    async def _chunks(self, request: Request, held: _Held, *, prepaid: bool) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self._settings.max_body_bytes:
                raise self._too_large()
            # A body without a length takes its share of the budget as it arrives.
            if not prepaid and not held.take(len(chunk)):
                raise self._busy()
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> _Refused:
        cap = self._settings.max_body_bytes
        self._warn("refused a delivery over max_body_bytes (%d): Segment drops it", cap)
        return _Refused(_reply(413, {"error": "body too large", "max_bytes": cap}))

    def _busy(self) -> _Refused:
        self._warn(
            "answered 503 to a delivery: max_bytes_in_flight (%d) are being read or stored",
            self._budget.limit,
        )
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return _Refused(_reply(503, {"error": "busy, retry later"}, retry))

    async def _ingest(self, body: bytes) -> Response:
        try:
            ingest = await run_in_threadpool(self._parse, body)
        except NotJsonError:
            self._warn("refused a delivery whose body is not JSON")
            return _reply(400, {"error": "body is not JSON"})
        try:
            await run_in_threadpool(self._commit, ingest)
        except Exception as exc:
            self._warn(
                "audience events not stored, answered 503: %s",
                self._one_line(exc),
                level=logging.ERROR,
            )
            return _reply(503, {"error": "not stored, retry later"})
        self._counters.ingested(ingest)
        return _reply(
            200, {"accepted": ingest.accepted, "ignored": dict(sorted(ingest.ignored.items()))}
        )

    def _parse(self, body: bytes) -> Ingest:
        return collect(decode_items(body), self._mappings)

    def _one_line(self, exc: BaseException) -> str:
        text = self._describe(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    def _warn(self, message: str, *args: object, level: int = logging.WARNING) -> None:
        # Anyone can knock: a flood of refusals is one line a minute, with a count.
        count = self._throttle.admit(message)
        if count is not None:
            log.log(level, message + held_back(count), *args)


class _Held:
    """What one request holds of the budget, given back whatever its end."""

    def __init__(self, budget: ByteBudget) -> None:
        self._budget = budget
        self._size = 0

    def take(self, size: int) -> bool:
        """Hold `size` more bytes for this request, if the budget has them."""
        if not self._budget.take(size):
            return False
        self._size += size
        return True

    def release(self) -> None:
        """Give back everything this request held."""
        self._budget.give(self._size)
        self._size = 0


def _declared_length(request: Request) -> int | None:
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isascii() and declared.isdigit() else None
