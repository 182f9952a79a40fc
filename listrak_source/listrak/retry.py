"""When to try a Listrak call again, and how long to wait first.

Sleep, clock and random are injected (as in hynek's stamina) so that tests assert on the
delays that would have been slept instead of sleeping them.
"""

from __future__ import annotations

import logging
import math
import random as _random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from ..errors import ListrakUnavailableError, StopRequested
from ..logs import hide_emails

log = logging.getLogger("listrak_source.listrak")

# A 429 is the server pacing us, not a failure, so it does not use up an attempt; this many
# waits per allowed attempt still bounds a request that is rate limited forever.
RATE_LIMIT_WAITS_PER_ATTEMPT = 4


class RetryableError(ListrakUnavailableError):
    """Raised from inside a request (e.g. by the auth flow) for an answer worth retrying."""

    def __init__(self, message: str, *, status: int, retry_after: str | None, date: str | None):
        super().__init__(message, status=status)
        self.retry_after = retry_after
        self.date = date


@dataclass(slots=True)
class ClientStats:
    """Counters for metrics; they only ever grow."""

    requests: int = 0  # HTTP requests started, token requests included
    retries: int = 0  # attempts repeated after a 5xx or a connection error
    rate_limited: int = 0  # waits caused by a 429
    token_fetches: int = 0  # tokens obtained


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter (AWS style) so that many workers spread out."""

    base: float = 0.5
    maximum: float = 30.0
    random: Callable[[], float] = _random.random

    def __post_init__(self) -> None:
        if self.base < 0 or self.maximum < 0:
            raise ValueError("backoff base and maximum must not be negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the attempt-th consecutive failure (1-based)."""
        # Capping the exponent first keeps 2**n from overflowing after very many attempts.
        exponent = min(max(attempt - 1, 0), 62)
        ceiling = min(self.maximum, self.base * 2.0**exponent)
        return ceiling * min(max(self.random(), 0.0), 1.0)


def stoppable_sleep(stop: threading.Event) -> Callable[[float], None]:
    """A sleep that a stop signal ends at once, abandoning the request that was waiting."""

    def sleep(seconds: float) -> None:
        if stop.wait(seconds):
            raise StopRequested("stopped while waiting to call Listrak")

    return sleep


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for, from delta-seconds or an HTTP-date.

    ``now`` should be the response's own Date header when there is one: comparing two
    server timestamps is immune to our clock being skewed. None means "no usable hint".
    """
    text = (value or "").strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        when = parse_http_date(text)
        if when is None:
            return None
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return None if math.isnan(seconds) else max(seconds, 0.0)


def parse_http_date(value: str | None) -> datetime | None:
    """An aware datetime from an RFC 9110 date, or None when it is not one."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    # RFC 9110 dates are always GMT; a zone-less parse result means the same thing.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def retry_after_delay(value: str | None, *, date_header: str | None, cap: float) -> float | None:
    """The Retry-After wait for a response, capped so one header cannot stall a run for hours."""
    seconds = parse_retry_after(value, now=parse_http_date(date_header))
    return None if seconds is None else min(seconds, cap)


def is_retryable_status(status: int) -> bool:
    """5xx are Listrak's trouble (500 ERROR_UNHANDLED_EXCEPTION happens); 429 is pacing."""
    return status == 429 or status >= 500


def envelope(response: httpx.Response) -> tuple[str | None, str | None]:
    """Listrak's {"status","error","message"} code and message, best effort: may be HTML."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("error"), body.get("message")
    return (
        code if isinstance(code, str) else None,
        message[:300] if isinstance(message, str) else None,
    )


def describe(response: httpx.Response) -> str:
    """ "500 ERROR_UNHANDLED_EXCEPTION: message", for error messages and logs; an address
    Listrak's message quotes is hidden."""
    code, message = envelope(response)
    message = None if message is None else hide_emails(message)
    text = " ".join(part for part in (str(response.status_code), code) if part)
    return f"{text}: {message}" if message else text


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int | None  # None: no HTTP answer at all
    detail: str
    retry_after: float | None = None
    code: str | None = None


class Retrier:
    """Runs one request until it gets an answer that retrying cannot improve."""

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff: Backoff,
        max_retry_after: float,
        stats: ClientStats,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._max_attempts, self._backoff = max_attempts, backoff
        self._cap, self._stats, self._sleep = max_retry_after, stats, sleep

    def call(self, endpoint: str, send: Callable[[], httpx.Response]) -> httpx.Response:
        """The first response that is neither 429 nor 5xx; ListrakUnavailableError if none."""
        failures = waits = 0
        while True:
            outcome = self._attempt(send)
            if isinstance(outcome, httpx.Response):
                return outcome
            if outcome.status == 429:
                waits += 1
                if waits > self._max_attempts * RATE_LIMIT_WAITS_PER_ATTEMPT:
                    raise _unavailable(endpoint, outcome, f"still rate limited after {waits} tries")
                self._stats.rate_limited += 1
                delay, step = outcome.retry_after, waits
            else:
                failures += 1
                if failures >= self._max_attempts:
                    raise _unavailable(endpoint, outcome, f"failed {failures} times")
                self._stats.retries += 1
                delay, step = outcome.retry_after, failures
            delay = self._backoff.delay(step) if delay is None else delay
            log.warning("Listrak %s: %s; retrying in %.2fs", endpoint, outcome.detail, delay)
            self._sleep(delay)

    def _attempt(self, send: Callable[[], httpx.Response]) -> httpx.Response | _Failure:
        try:
            response = send()
        except RetryableError as exc:
            delay = retry_after_delay(exc.retry_after, date_header=exc.date, cap=self._cap)
            return _Failure(exc.status, str(exc), delay)
        except httpx.TransportError as exc:
            return _Failure(None, f"{type(exc).__name__}: {str(exc)[:200]}")
        if not is_retryable_status(response.status_code):
            return response
        headers = response.headers
        delay = retry_after_delay(
            headers.get("Retry-After"), date_header=headers.get("Date"), cap=self._cap
        )
        # Retry-After is honoured on a 503 too: it is the server saying when it expects to be back.
        return _Failure(response.status_code, describe(response), delay, envelope(response)[0])


def _unavailable(endpoint: str, failure: _Failure, what: str) -> ListrakUnavailableError:
    return ListrakUnavailableError(
        f"Listrak {endpoint} {what}; last: {failure.detail}",
        status=failure.status,
        code=failure.code,
    )
