"""What Segment's answer to one batch means for its messages: kept, due again later, or refused."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .. import records
from ..logs import hide_emails, redact

if TYPE_CHECKING:
    from segment.analytics.request import APIError

_MAX_REASON = 200
# Answers about the endpoint or the key, not about any message: splitting a batch cannot help.
_ENDPOINT_STATUSES = frozenset({401, 403, 404, 405, 408, 429})


@dataclass(frozen=True, slots=True)
class Accepted:
    """Segment kept the batch: a 2xx carrying Segment's JSON answer."""


@dataclass(frozen=True, slots=True)
class Transient:
    """The endpoint's fault: the messages are fine and are due again later."""

    reason: str
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Permanent:
    """Segment refused what the batch holds: one or more of its messages is at fault."""

    status: int
    reason: str


Answer = Accepted | Transient | Permanent

STOPPED = Transient(records.STOPPED)


def one_line(text: str, write_key: str = "") -> str:
    """Text fit for a log line or a status: one line, short, no write key, no address."""
    text = redact(text, [write_key])
    return hide_emails(" ".join(text.split()))[:_MAX_REASON]


def classify_response(response: Any) -> Answer:
    """Only Segment's own answer to the POST, 200 `{"success": true}`, says the batch was kept:
    any other 2xx may come from a proxy or a page that never saw the batch."""
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = None
    if response.status_code == 200 and isinstance(answer, dict) and answer.get("success") is True:
        return Accepted()
    return Transient(f"Segment's answer could not be read (HTTP {response.status_code})")


def classify_error(error: Exception, write_key: str) -> Answer:
    """An error the library's post raised: an HTTP answer, or a request that never got one."""
    # Only a post raises these, so the library is loaded by then.
    from segment.analytics.request import APIError  # noqa: PLC0415

    if isinstance(error, APIError):
        return _classify_status(error, write_key)
    if isinstance(error, OSError):  # requests' exceptions are OSErrors
        return Transient(_unanswered(error))
    raise error


def _classify_status(error: APIError, write_key: str) -> Answer:
    status = int(error.status)
    if 300 <= status < 400:
        return Transient(f"segment.host answered a redirect ({status}); nothing was uploaded")
    reason = one_line(f"Segment answered {status} ({error.code}): {error.message}", write_key)
    if status < 400 or status >= 500 or status in _ENDPOINT_STATUSES:
        return Transient(reason, _retry_after(error))
    return Permanent(status, reason)


def _unanswered(error: OSError) -> str:
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & {"Timeout", "TimeoutError"}:
        return "Segment did not answer in time"
    return f"no answer from Segment ({type(error).__name__})"


def _retry_after(error: APIError) -> float | None:
    """Retry-After in seconds; an HTTP-date form is left to the backoff."""
    response = getattr(error, "response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    try:
        seconds = float(value or "nan")
    except ValueError:
        return None
    return max(seconds, 0.0) if math.isfinite(seconds) else None
