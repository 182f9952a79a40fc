"""Segment's Webhooks (Actions) destination, played against a URL, and Engage audience events.

WebhookSender posts events the way the destination does (JSON arrays or one event a request,
its headers, its optional X-Signature, its retry rule) with the switches a receiver must
survive: shuffled order, duplicated events, batches re-formed on retry. audience_track() and
audience_identify() build the events Engage sends when a profile enters or leaves an audience.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, NamedTuple, Self

import httpx

USER_AGENT = "Segment (Actions)"
SPACE_ID = "spa_simulated"
# Besides 5xx other than 501, the statuses the destination retries; other 4xx drop the batch.
RETRIED = frozenset({408, 423, 429})
_SURROGATE = re.compile("[\ud800-\udfff]")


def retried(status: int | None) -> bool:
    """Whether the destination tries again after this answer (None: no answer at all)."""
    return status is None or status in RETRIED or (status >= 500 and status != 501)


def _js(value: Any) -> Any:
    """JSON.stringify's view of numbers: one number type, non-finite ones become null."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() and abs(value) < 1e21 else value
    if isinstance(value, Mapping):
        return {k: _js(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_js(v) for v in value]
    return value


def stringify(value: Any) -> bytes:
    """The UTF-8 bytes of JSON.stringify(value): no whitespace, non-ASCII unescaped."""
    text = json.dumps(_js(value), separators=(",", ":"), ensure_ascii=False)
    # A lone surrogate cannot be UTF-8; JSON.stringify escapes it.
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def signature(secret: str, data: bytes) -> str:
    """X-Signature: hex HMAC-SHA1 of `data` under the shared secret."""
    return hmac.new(secret.encode(), data, hashlib.sha1).hexdigest()


class Outcome(NamedTuple):
    """What became of one sent copy of an event."""

    position: int  # the event's place in the list given to send()
    delivered: bool
    status: int | None  # the last answer's status; None when the last try got no answer
    attempts: int


@dataclass(slots=True, eq=False)  # duplicates are equal by value but settle apart
class _Copy:
    position: int
    body: bytes
    attempts: int = 0


class WebhookSender:
    """Posts events to a URL as Segment's Webhooks (Actions) destination does.

    batching=False sends each event as the whole body; otherwise bodies are JSON arrays of up
    to batch_size events. shared_secret adds X-Signature over the first element of a batch
    (sign_whole_body: over the whole body). A batch is tried up to max_attempts times while
    the answer is retried(); `sleep` and `rng` make the randomized backoff and the seeded
    switches (shuffle, duplicate_share, reform_on_retry) reproducible without waiting.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 1000,
        batching: bool = True,
        headers: Mapping[str, str] | None = None,
        shared_secret: str | None = None,
        sign_whole_body: bool = False,
        max_attempts: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        timeout: float = 10.0,
        shuffle: bool = False,
        duplicate_share: float = 0.0,
        reform_on_retry: bool = False,
        seed: int = 0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        client: httpx.Client | None = None,
    ) -> None:
        if batch_size < 1 or max_attempts < 1:
            raise ValueError("batch_size and max_attempts must be at least 1")
        self.url = url
        self.batch_size = batch_size if batching else 1
        self.batching = batching
        self.headers = dict(headers or {})
        self.shared_secret = shared_secret
        self.sign_whole_body = sign_whole_body
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.shuffle = shuffle
        self.duplicate_share = duplicate_share
        self.reform_on_retry = reform_on_retry
        self.rng = rng or random.Random(seed)
        self.sleep = sleep
        self._own_client = client is None
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, events: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Deliver the events; one outcome per sent copy, in the order each was settled."""
        queue = deque(self._plan(events))
        outcomes: list[Outcome] = []
        while queue:
            batch = [queue.popleft() for _ in range(min(self.batch_size, len(queue)))]
            outcomes += self._attempt(batch, queue)
        return outcomes

    def _plan(self, events: Sequence[Mapping[str, Any]]) -> list[_Copy]:
        """Every event once, a seeded share twice, shuffled when asked."""
        copies = [_Copy(i, stringify(e)) for i, e in enumerate(events)]
        copies += [
            _Copy(c.position, c.body) for c in copies if self.rng.random() < self.duplicate_share
        ]
        if self.shuffle:
            self.rng.shuffle(copies)
        return copies

    def _attempt(self, batch: list[_Copy], queue: deque[_Copy]) -> list[Outcome]:
        """Post one batch; settle it, or put it back to be tried again after a pause."""
        status = self._post(batch)
        for c in batch:
            c.attempts += 1
        ok = status is not None and 200 <= status < 300
        again = [c for c in batch if not ok and retried(status) and c.attempts < self.max_attempts]
        if again:
            self.sleep(self._delay(again[0].attempts))
            if self.reform_on_retry:
                queue.extend(again)
            else:
                queue.extendleft(reversed(again))
        return [Outcome(c.position, ok, status, c.attempts) for c in batch if c not in again]

    def _delay(self, attempts: int) -> float:
        """Exponential backoff with jitter: half to one and a half times the step."""
        step = min(self.max_backoff, self.backoff * 2.0 ** (attempts - 1))
        return step * (0.5 + self.rng.random())

    def _post(self, batch: list[_Copy]) -> int | None:
        """The answer's status, or None for a timeout or a connection error."""
        first = batch[0].body
        body = b"[" + b",".join(c.body for c in batch) + b"]" if self.batching else first
        headers = {**self.headers, "Content-Type": "application/json", "User-Agent": USER_AGENT}
        if self.shared_secret is not None:
            signed = body if self.sign_whole_body else first
            headers["X-Signature"] = signature(self.shared_secret, signed)
        try:
            return self._client.post(self.url, content=body, headers=headers).status_code
        except httpx.TransportError:
            return None

    def close(self) -> None:
        """Close the HTTP client, unless it was handed in."""
        if self._own_client:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _iso(moment: datetime | str) -> str:
    """Segment's timestamp shape: UTC to the millisecond with a Z."""
    if isinstance(moment, str):
        return moment
    if moment.tzinfo is None:
        raise ValueError("timestamps need an aware datetime, e.g. tzinfo=UTC")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _short_hash(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()[:24]


def _audience_event(
    kind: str,
    key: str,
    email: str,
    *,
    timestamp: datetime | str,
    message_id: str | None,
    space_id: str,
    user_id: str | None,
    computation_class: str,
) -> dict[str, Any]:
    """The parts every Engage audience event shares."""
    when = _iso(timestamp)
    personas = {
        "computation_class": computation_class,
        "computation_id": f"aud_{_short_hash(space_id, key)}",
        "computation_key": key,
        "namespace": space_id,
        "space_id": space_id,
    }
    return {
        "type": kind,
        "userId": user_id or f"u_{_short_hash(email.lower())[:12]}",
        "messageId": message_id or f"personas_{uuid.uuid4().hex[:27]}",
        "timestamp": when,
        "receivedAt": when,
        "context": {"personas": personas},
    }


def audience_track(
    key: str,
    email: str,
    member: bool,
    *,
    timestamp: datetime | str,
    message_id: str | None = None,
    space_id: str = SPACE_ID,
    user_id: str | None = None,
    event: str | None = None,
    computation_class: str = "audience",
) -> dict[str, Any]:
    """An "Audience Entered" / "Audience Exited" track event for one email."""
    base = _audience_event(
        "track",
        key,
        email,
        timestamp=timestamp,
        message_id=message_id,
        space_id=space_id,
        user_id=user_id,
        computation_class=computation_class,
    )
    base["event"] = event or ("Audience Entered" if member else "Audience Exited")
    base["context"]["traits"] = {"email": email}
    base["properties"] = {"audience_key": key, key: member}
    return base


def audience_identify(
    key: str,
    email: str,
    member: bool,
    *,
    timestamp: datetime | str,
    message_id: str | None = None,
    space_id: str = SPACE_ID,
    user_id: str | None = None,
    computation_class: str = "audience",
) -> dict[str, Any]:
    """An identify carrying the audience's trait (true on entry, false on exit)."""
    base = _audience_event(
        "identify",
        key,
        email,
        timestamp=timestamp,
        message_id=message_id,
        space_id=space_id,
        user_id=user_id,
        computation_class=computation_class,
    )
    base["traits"] = {key: member, "email": email}
    return base
