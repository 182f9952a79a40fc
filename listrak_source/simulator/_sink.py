"""A loopback stand-in for Segment's HTTP Tracking API /v1/batch, with its limits and auth."""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from ._faults import SinkFaults, SinkInjected
from ._http import HttpError, HttpServer, Lifecycle, Request, Response, json_response

MAX_MESSAGE_BYTES = 32 * 1024
# 500 KB read as KiB, like the client's 32 << 10: the official client can overshoot
# its own 475,000-byte target by one message, and real Segment takes such batches.
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
_DECODER = json.JSONDecoder()
# The C scanner without raw_decode's Python wrapper: it runs once per message. Typeshed
# does not declare the attribute JSONDecoder.__init__ sets.
_scan: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")


@dataclass(slots=True)
class SinkStats:
    """Batch requests seen and the thread CPU seconds spent on them (benchmarks subtract it)."""

    requests: int = 0
    seconds: float = 0.0


def _error(err: HttpError) -> Response:
    # segment-analytics-python reads `code` and `message` from any non-2xx body.
    return json_response(err.status, {"code": err.code, "message": str(err)}, err.headers)


def _bad(message: str, code: str = "invalid_request") -> HttpError:
    return HttpError(400, message, code)


def _encoding(req: Request) -> str:
    return (req.headers.get("Content-Encoding") or "").strip().lower()


def decode_body(req: Request) -> str:
    """The request body as text, gunzipped when marked, refused over the batch limit."""
    body = req.body
    encoding = _encoding(req)
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, MAX_BATCH_BYTES + 1)
        except zlib.error:
            raise _bad("Invalid gzip body") from None
        if not inflater.eof and len(body) <= MAX_BATCH_BYTES:
            raise _bad("Truncated gzip body")
    elif encoding not in ("", "identity"):
        raise _bad(f"Unsupported Content-Encoding {encoding}")
    if len(body) > MAX_BATCH_BYTES:
        raise _bad("Payload is too large: a batch must be under 500 KB", "payload_too_large")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise _bad("Invalid JSON: not UTF-8") from None


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode())  # isascii() is O(1)


def _skip(text: str, i: int) -> int:
    match = _WS.match(text, i)
    return match.end() if match else i


def _expect(text: str, i: int, char: str) -> int:
    i = _skip(text, i)
    if text[i : i + 1] != char:
        raise ValueError(f"expected {char!r} at {i}")
    return _skip(text, i + 1)


def _scan_batch(text: str, i: int) -> tuple[list[Any], int]:
    """Decode a JSON array element by element, measuring the elements that might be too big."""
    items: list[Any] = []
    i = _expect(text, i, "[")
    if text.startswith("]", i):
        return items, i + 1
    while True:
        try:
            item, end = _scan(text, i)
        except StopIteration:
            raise ValueError(f"expected a value at {i}") from None
        items.append(item)
        # A code point is at most four UTF-8 bytes, so short spans need no measuring.
        if end - i > MAX_MESSAGE_BYTES // 4 and _utf8_len(text[i:end]) > MAX_MESSAGE_BYTES:
            raise _bad("Payload is too large: a message must be under 32 KB", "payload_too_large")
        if text.startswith(", {", end):  # the common separators first: this runs per message
            i = end + 2
        elif text.startswith(",{", end):
            i = end + 1
        else:
            i = _skip(text, end)
            if text.startswith("]", i):
                return items, i + 1
            i = _expect(text, i, ",")


def parse_batch(text: str) -> dict[str, Any]:
    """The top-level object; measures messages only when one could be over 32 KB."""
    if _utf8_len(text) <= MAX_MESSAGE_BYTES:
        doc = orjson.loads(text)  # no part can exceed the whole
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        return doc
    # Walk the object by hand so each message's span is known without re-encoding it.
    doc = {}
    i = _expect(text, 0, "{")
    while text[i : i + 1] != "}":
        key, i = _DECODER.raw_decode(text, i)
        if not isinstance(key, str):
            raise ValueError("object key is not a string")
        i = _expect(text, i, ":")
        if key == "batch" and text[i : i + 1] == "[":
            doc[key], i = _scan_batch(text, i)
        else:
            doc[key], i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i : i + 1] == ",":
            i = _skip(text, i + 1)
            if text[i : i + 1] == "}":
                raise ValueError("trailing comma")
        elif text[i : i + 1] != "}":
            raise ValueError(f"expected ',' or '}}' at {i}")
    if _skip(text, i + 1) != len(text):
        raise ValueError("trailing data")
    return doc


def _write_key(req: Request, doc: Mapping[str, Any]) -> str | None:
    """Basic auth (`writeKey:` in base64) first, as Segment documents, else the body's key."""
    scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
    key: object = None
    if scheme.lower() == "basic":
        try:
            key = base64.b64decode(value.strip(), validate=True).decode().partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            key = None
    key = key or doc.get("writeKey")
    return key if isinstance(key, str) and key else None


class _Received:
    """Batches as they arrived (gzipped or not), decoded on first read: a million decoded
    messages cost gigabytes and keep the cyclic collector busy for the whole benchmark."""

    def __init__(self) -> None:
        self.batches = 0
        self.count = 0
        self._bodies: list[tuple[bytes, bool]] = []
        self._decoded: list[dict[str, Any]] = []

    def add(self, body: bytes, gzipped: bool, count: int) -> None:
        """Keep one validated batch."""
        self._bodies.append((body, gzipped))
        self.batches += 1
        self.count += count

    def messages(self) -> list[dict[str, Any]]:
        """Every message kept so far, in arrival order."""
        for body, gzipped in self._bodies:
            text = zlib.decompress(body, wbits=31) if gzipped else body
            self._decoded.extend(orjson.loads(text)["batch"])
        self._bodies.clear()
        return self._decoded


class SegmentSink(Lifecycle):
    """Segment's /v1/batch on loopback: keeps what a real write key sends, in arrival order."""

    def __init__(
        self, write_key: str = "sink-write-key", host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.write_key = write_key
        self.faults = SinkFaults()
        self.stats = SinkStats()
        self._kept = _Received()
        self._rejected = _Received()
        self._lock = threading.Lock()
        self._server = HttpServer(self._app, host, port)

    @property
    def url(self) -> str:
        """What the worker configures as segment.host."""
        return self._server.origin

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every message of every kept batch, in arrival order, duplicates included."""
        with self._lock:
            return self._kept.messages()

    @property
    def rejected(self) -> list[dict[str, Any]]:
        """Messages sent with a wrong write key: answered 200, as Segment does, but not kept."""
        with self._lock:
            return self._rejected.messages()

    @property
    def batches(self) -> int:
        """How many batches were kept."""
        return self._kept.batches

    @property
    def message_count(self) -> int:
        """len(messages), without decoding them."""
        return self._kept.count

    def clear(self) -> None:
        """Forget everything received (faults stay as they are)."""
        with self._lock:
            self._kept = _Received()
            self._rejected = _Received()

    def profiles(self) -> dict[str, dict[str, Any]]:
        """The profiles Segment would hold after everything kept so far."""
        return rebuild_profiles(list(self.messages))

    def _app(self, req: Request) -> Response:
        path = req.path.rstrip("/")
        if path == "/_sink/stats":  # for benchmarks that run the CLI in another process
            with self._lock:
                counts = {"batches": self._kept.batches, "messages": self._kept.count}
                extra = {"rejected": self._rejected.count, "requests": self.stats.requests}
                return json_response(200, {**counts, **extra, "seconds": self.stats.seconds})
        if path not in ("/v1/batch", "/v1/import"):
            return _error(HttpError(404, f"No route for {req.path}", "not_found"))
        if self.faults.redirect is not None:
            status, location = self.faults.redirect
            return Response(status, headers=[("Location", location)])
        if req.method != "POST":
            return _error(HttpError(405, "Use POST", "method_not_allowed"))
        return self._batch(req)

    def _batch(self, req: Request) -> Response:
        fault = self.faults.take()
        if fault is not None and not fault.lose_ack:
            return self._inject(fault)
        if self.faults.refuse_all is not None:
            status = self.faults.refuse_all
            return _error(HttpError(status, "Simulated refusal of every batch", "invalid_request"))
        started = time.thread_time()
        try:
            response = self._accept(req)
        except HttpError as err:
            if err.code == "payload_too_large":
                err.status = self.faults.oversize_status
            response = _error(err)
        with self._lock:
            self.stats.requests += 1
            self.stats.seconds += time.thread_time() - started
        return response if fault is None else _lost_ack(fault)

    def _inject(self, fault: SinkInjected) -> Response:
        with self._lock:
            self.stats.requests += 1
        if fault.hang:
            self._server.stopping.wait(fault.hang)
            return Response(0, drop=True)
        message = "Too many requests" if fault.status == 429 else "Simulated failure"
        code = "too_many_requests" if fault.status == 429 else "internal_error"
        return _error(HttpError(fault.status, message, code, fault.retry_after))

    def _accept(self, req: Request) -> Response:
        text = decode_body(req)
        try:
            doc = parse_batch(text)
        except (ValueError, RecursionError):
            raise _bad("Invalid JSON") from None
        batch = doc.get("batch")
        if not isinstance(batch, list) or not all(isinstance(m, dict) for m in batch):
            raise _bad("batch must be a list of message objects")
        if len(batch) > MAX_BATCH_EVENTS:
            raise _bad(f"A batch holds at most {MAX_BATCH_EVENTS} events", "payload_too_large")
        key = _write_key(req, doc)
        if key is None:
            raise HttpError(401, "Missing write key", "unauthorized")
        if self.faults.poison and self.faults.poisoned(_ids(batch)):
            raise _bad("A message of the batch was refused")
        if not batch:  # Segment takes an empty batch and creates nothing: `check` probes with it
            return json_response(200, {"success": True})
        gzipped = _encoding(req) == "gzip"
        with self._lock:
            # Segment answers 200 to a wrong key and drops the data.
            kept = self._kept if key == self.write_key else self._rejected
            kept.add(req.body, gzipped, len(batch))
        return json_response(200, {"success": True})


def _lost_ack(fault: SinkInjected) -> Response:
    """The batch is kept but the client never hears it was, so it must re-send."""
    if fault.trickle:
        answer = json_response(200, {"success": True})
        answer.trickle = fault.trickle
        return answer
    if fault.status:
        return _error(HttpError(fault.status, "Simulated failure", "internal_error"))
    return Response(0, drop=True)


def _ids(batch: list[dict[str, Any]]) -> list[str]:
    """Each message's traits.email and anonymousId, where they are strings."""
    found: list[str] = []
    for m in batch:
        traits = m.get("traits")
        email = traits.get("email") if isinstance(traits, dict) else None
        found += [x for x in (email, m.get("anonymousId")) if isinstance(x, str)]
    return found


def _when(message: Mapping[str, Any]) -> datetime:
    stamp = message.get("timestamp")
    try:
        moment = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError:
        moment = None
    if moment is None:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def rebuild_profiles(messages: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Profiles as Segment would build them: messageId dedupe, timestamp order, null removes."""
    seen: set[str] = set()
    identifies: list[Mapping[str, Any]] = []
    for m in messages:
        mid = m.get("messageId")
        if isinstance(mid, str):
            if mid in seen:
                continue
            seen.add(mid)
        if m.get("type") == "identify":
            identifies.append(m)
    profiles: dict[str, dict[str, Any]] = {}
    for m in sorted(identifies, key=_when):
        who = m.get("anonymousId") or m.get("userId")
        if not isinstance(who, str) or not who:
            continue
        profile = profiles.setdefault(who.lower(), {"traits": {}, "user_id": None})
        traits = m.get("traits")
        for name, value in traits.items() if isinstance(traits, Mapping) else ():
            if value is None:
                profile["traits"].pop(name, None)
            else:
                profile["traits"][name] = value
        if m.get("userId") is not None:
            profile["user_id"] = m["userId"]
    return profiles
