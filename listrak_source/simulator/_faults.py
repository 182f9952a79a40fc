"""Switchable failures of the simulator and the sink, and the token book they act on."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Injected:
    """One planned failure: the status to answer and, for 429s, the Retry-After seconds."""

    status: int
    retry_after: int | None = None


class _Queue(Generic[T]):
    """Failures to hand out one per request, in the order they were planned."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[T] = []

    def add(self, n: int, item: T) -> None:
        with self._lock:
            self._items.extend([item] * n)

    def take(self) -> T | None:
        with self._lock:
            return self._items.pop(0) if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class ListrakFaults:
    """Failures of the Listrak simulator; every attribute is safe to set from a test."""

    def __init__(self) -> None:
        self._api: _Queue[Injected] = _Queue()
        self._token: _Queue[Injected] = _Queue()
        self.token_ttl: float | None = None
        self.reject_auth = False
        self.page_delay = 0.0
        self.die_after_page: int | None = None
        self.expired_at = 0  # bumped by expire_tokens(); tokens issued before are dead

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next n API requests answer `status` with the error envelope."""
        self._api.add(n, Injected(status))

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """The next n API requests answer 429 with a Retry-After header."""
        self._api.add(n, Injected(429, retry_after))

    def fail_token_next(self, n: int, status: int = 500) -> None:
        """The next n token requests answer `status`."""
        self._token.add(n, Injected(status))

    def expire_tokens(self) -> None:
        """Every token issued so far becomes invalid now."""
        self.expired_at += 1

    def take_api(self) -> Injected | None:
        """The failure planned for this API request, if any."""
        return self._api.take()

    def take_token(self) -> Injected | None:
        """The failure planned for this token request, if any."""
        return self._token.take()

    def reset(self) -> None:
        """Back to a healthy service (issued tokens stay valid)."""
        self._api.clear()
        self._token.clear()
        self.token_ttl = None
        self.reject_auth = False
        self.page_delay = 0.0
        self.die_after_page = None


@dataclass(frozen=True, slots=True)
class SinkInjected:
    """One planned sink failure: an error status, a hang, or a lost acknowledgement."""

    status: int = 0
    retry_after: int | None = None
    hang: float = 0.0
    lose_ack: bool = False


class SinkFaults:
    """Failures of the Segment sink, consumed one per batch request."""

    def __init__(self) -> None:
        self._plans: _Queue[SinkInjected] = _Queue()
        # Emails whose batches Segment refuses as a whole, as it does a malformed message.
        self.poisoned: frozenset[str] = frozenset()

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next n batches answer `status` with a Segment error body and are not kept."""
        self._add(n, SinkInjected(status=status))

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """The next n batches answer 429 with Retry-After and are not kept."""
        self._add(n, SinkInjected(status=429, retry_after=retry_after))

    def hang_next(self, n: int, seconds: float) -> None:
        """The next n batches wait `seconds`, then the connection closes; nothing kept."""
        self._add(n, SinkInjected(hang=seconds))

    def lose_ack_next(self, n: int) -> None:
        """The next n batches are kept, then the connection closes with no answer."""
        self._add(n, SinkInjected(lose_ack=True))

    def poison(self, *emails: str) -> None:
        """Every batch holding a message for one of these emails answers 400, nothing kept."""
        self.poisoned = self.poisoned | set(emails)

    def refuses(self, batch: list[dict[str, Any]]) -> bool:
        """Whether a batch holds a poisoned message (by anonymousId or traits.email)."""
        if not self.poisoned:
            return False
        return any(_email_of(message) in self.poisoned for message in batch)

    def take(self) -> SinkInjected | None:
        """The failure planned for this batch request, if any."""
        return self._plans.take()

    def reset(self) -> None:
        """Back to a healthy sink."""
        self._plans.clear()
        self.poisoned = frozenset()

    def _add(self, n: int, plan: SinkInjected) -> None:
        self._plans.add(n, plan)


def _email_of(message: dict[str, Any]) -> object:
    traits = message.get("traits")
    email = traits.get("email") if isinstance(traits, dict) else None
    return email or message.get("anonymousId")


class TokenBook:
    """Issued bearer tokens and when each dies."""

    def __init__(self, faults: ListrakFaults) -> None:
        self._faults = faults
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, int]] = {}

    def issue(self, ttl: float) -> str:
        """A fresh token living `ttl` seconds."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[token] = (time.monotonic() + ttl, self._faults.expired_at)
        return token

    def valid(self, header: str | None) -> bool:
        """Whether an Authorization header carries a live token."""
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            entry = self._tokens.get(token.strip())
        if entry is None:
            return False
        expires, generation = entry
        return generation == self._faults.expired_at and time.monotonic() < expires


def valid_token_request(body: bytes, client_id: str, client_secret: str) -> bool:
    """Whether a token request form carries the right grant and credentials."""
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    return (
        form.get("grant_type") == "client_credentials"
        and secrets.compare_digest(form.get("client_id", "").encode(), client_id.encode())
        and secrets.compare_digest(form.get("client_secret", "").encode(), client_secret.encode())
    )
