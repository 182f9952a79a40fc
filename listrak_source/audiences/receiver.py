"""The HTTP endpoint Segment's Webhooks (Actions) destination posts audience events to.

Segment retries a 5xx (and 408, 429) for hours but drops the whole batch on any other 4xx,
so a 4xx is reserved for requests that are not ours (401), too big to take (413) or not
JSON (400). An item's content never fails a batch: what cannot be used is acknowledged and
counted. A 200 is answered only after `commit` has kept the batch.
"""

from __future__ import annotations

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


def _reply(status: int, content: object) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


class _Events:
    """POST /events: authenticate, read within the cap, verify, parse, commit, then answer."""

    def __init__(
        self,
        settings: ReceiverSettings,
        mappings: Mappings,
        commit: Commit,
        counters: ReceiverCounters,
        describe_error: Callable[[BaseException], str],
    ) -> None:
        self._secrets = [s.get_secret_value().encode() for s in settings.secrets]
        self._shared = settings.signing_secrets()
        self._cap = settings.max_body_bytes
        self._mappings = mappings
        self._commit = commit
        self._counters = counters
        self._describe = describe_error

    async def post(self, request: Request) -> Response:
        """Handle one delivery and count its answer."""
        response = await self._handle(request)
        self._counters.answered(response.status_code)
        return response

    async def _handle(self, request: Request) -> Response:
        if not bearer_matches(request.headers.get("authorization"), self._secrets):
            log.warning("refused a delivery: wrong or missing bearer secret")
            return _reply(401, {"error": "unauthorized"})
        try:
            body = await _read_within(request, self._cap)
        except ClientDisconnect:
            return _reply(400, {"error": "client went away"})
        if body is None:
            log.warning("refused a delivery over max_body_bytes (%d): Segment drops it", self._cap)
            return _reply(413, {"error": "body too large", "max_bytes": self._cap})
        signature = request.headers.get("x-signature")
        if self._shared and not signature_matches(body, signature, self._shared):
            log.warning("refused a delivery: wrong or missing X-Signature")
            return _reply(401, {"error": "bad signature"})
        return await self._ingest(body)

    async def _ingest(self, body: bytes) -> Response:
        try:
            ingest = await run_in_threadpool(self._parse, body)
        except NotJsonError:
            log.warning("refused a delivery whose body is not JSON")
            return _reply(400, {"error": "body is not JSON"})
        try:
            await run_in_threadpool(self._commit, ingest)
        except Exception as exc:
            log.error("audience events not stored, answered 503: %s", self._one_line(exc))
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


async def _read_within(request: Request, cap: int) -> bytes | None:
    """The body, or None once it is known to exceed the cap (never holding more than that)."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > cap:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
