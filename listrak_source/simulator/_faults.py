"""Switchable failures of the simulator and the sink, and the token book they act on."""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar
from urllib.parse import parse_qsl

T = TypeVar("T")
# What an import does with an email it cannot simply update.
Policy = Literal["skip", "apply"]


@dataclass(frozen=True, slots=True)
class Injected:
    """One planned failure: the status to answer and, for 429s, the Retry-After seconds;
    `plain`: answered by something in front of the API (a gateway's HTML page), without
    Listrak's error envelope."""

    status: int
    retry_after: int | None = None
    plain: bool = False


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
    """Failures and switchable behaviours of the Listrak simulator; every attribute is safe to
    set from a test.

    Contact pages: `offset_cursors` makes new cursors encode an offset into the matching
    contacts instead of a stable position, so a change on an earlier page shifts later pages;
    from page `empty_after_page` on, every page is empty with a fresh cursor, forever; from
    page `repeat_after_page` on, every page serves that page's contacts again under a fresh
    cursor, forever; `page_trickle` seconds pass between each byte of a page's answer.
    Profile-field imports (the bulk route): `import_delay` seconds of the simulator's clock
    pass before an import applies; `nonmembers` and `unsubscribed` say whether values for
    such emails are skipped or applied; `checked_value` / `unchecked_value` (None: no value)
    are what a box set by an import reads back as; `refuse_beta` answers the Beta refusal
    with `beta_status`; `drop_imports` accepts imports that never apply; a body carrying an
    email of `refuse_emails` (any case) is refused whole with a 400, as Listrak refuses a
    value it cannot take.
    """

    def __init__(self) -> None:
        self._api: _Queue[Injected] = _Queue()
        self._bulk: _Queue[Injected] = _Queue()
        self._token: _Queue[Injected] = _Queue()
        self.expired_at = 0  # bumped by expire_tokens(); tokens issued before are dead
        self.reset()

    def fail_next(self, n: int, status: int = 500, *, plain: bool = False) -> None:
        """The next n API requests answer `status` with the error envelope, or with a
        gateway's HTML page (`plain`)."""
        self._api.add(n, Injected(status, plain=plain))

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """The next n API requests answer 429 with a Retry-After header."""
        self._api.add(n, Injected(429, retry_after))

    def fail_token_next(self, n: int, status: int = 500) -> None:
        """The next n token requests answer `status`."""
        self._token.add(n, Injected(status))

    def expire_tokens(self) -> None:
        """Every token issued so far becomes invalid now."""
        self.expired_at += 1

    def fail_bulk_next(self, n: int, status: int = 500) -> None:
        """The next n profile-field imports answer `status`; other routes stay healthy."""
        self._bulk.add(n, Injected(status))

    def rate_limit_bulk_next(self, n: int, retry_after: int = 1) -> None:
        """The next n profile-field imports answer 429 with a Retry-After header."""
        self._bulk.add(n, Injected(429, retry_after))

    def take_bulk(self) -> Injected | None:
        """The failure planned for this profile-field import, if any."""
        return self._bulk.take()

    def take_api(self) -> Injected | None:
        """The failure planned for this API request, if any."""
        return self._api.take()

    def take_token(self) -> Injected | None:
        """The failure planned for this token request, if any."""
        return self._token.take()

    def reset(self) -> None:
        """Back to a healthy service with default behaviours (issued tokens stay valid)."""
        self._api.clear()
        self._bulk.clear()
        self._token.clear()
        self.token_ttl: float | None = None
        self.reject_auth = False
        self.page_delay = 0.0
        self.die_after_page: int | None = None
        self.offset_cursors = False
        self.empty_after_page: int | None = None
        self.repeat_after_page: int | None = None
        self.page_trickle = 0.0
        self.import_delay = 0.0
        self.nonmembers: Policy = "skip"
        self.unsubscribed: Policy = "skip"
        self.checked_value = "on"
        self.unchecked_value: str | None = None
        self.refuse_beta = False
        # The route's Swagger declares 400, 401 and 404 only; the refusal is an access check on
        # the integration, which the API answers with 401 (ERROR_UNAUTHORIZED also covers
        # "insufficient access level"), never 403.
        self.beta_status = 401
        self.drop_imports = False
        self.refuse_emails: set[str] = set()
        # A single read of an address in `refuse_reads` (any case) is refused with a 400,
        # as Listrak's ERROR_UNSAFE_ROUTE refuses a request path it deems unsafe.
        self.refuse_reads: set[str] = set()
        # Activity: an integration without the Reporting area is refused on the activity,
        # link and clicker routes (Listrak documents no status: 401 or 403); a changed row
        # moves to the end of its message's order; a hook runs after each activity page
        # with (message id, page number), to change rows while a pass reads them.
        self.refuse_reporting: int | None = None
        self.shift_activity = False
        self.on_activity_page: Callable[[int, int], None] | None = None
        # A hook that runs with each API request's path before it is answered: a test plans
        # a failure for that very request, or sends a signal, at the request it chooses.
        self.on_request: Callable[[str], None] | None = None


@dataclass(frozen=True, slots=True)
class SinkInjected:
    """One planned sink failure: an error status, a hang, or a lost acknowledgement (the batch
    is kept, then the connection closes, `status` answers when it is set, or the answer
    trickles in a byte every `trickle` seconds)."""

    status: int = 0
    retry_after: int | None = None
    hang: float = 0.0
    lose_ack: bool = False
    trickle: float = 0.0


class _Share:
    """A seeded share of batches that meet one failure."""

    def __init__(self, share: float, plan: SinkInjected, seed: int) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be between 0 and 1")
        self.share = share
        self.plan = plan
        self._random = random.Random(seed)

    def draw(self) -> SinkInjected | None:
        """This batch's failure, if the dice say so."""
        return self.plan if self._random.random() < self.share else None


class SinkFaults:
    """Failures of the Segment sink, consumed one per batch request.

    Planned failures come first, then `outage` (every batch answers 503 and nothing is kept),
    then the seeded shares. `poison` holds emails and anonymousIds (any case): a batch
    carrying one as traits.email or anonymousId is refused with a 400 and not kept.
    `oversize_status` is what a batch over 500 KB, a message over 32 KB or more than 2,500
    events get: 400, as Segment documents, or 413 to try a client on it. `redirect` (a status
    and a Location) makes the host a redirector, as a proxy or a mistyped host can be: every
    batch request is answered with it and nothing is kept. `refuse_all` (400 or 413) refuses
    every batch, an empty one too, with Segment's error body, as a host or a key that is
    wrong for every message would.
    """

    def __init__(self) -> None:
        self._plans: _Queue[SinkInjected] = _Queue()
        self._lock = threading.Lock()
        self.reset()

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next n batches answer `status` with a Segment error body and are not kept."""
        self._add(n, SinkInjected(status=status))

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """The next n batches answer 429 with Retry-After and are not kept."""
        self._add(n, SinkInjected(status=429, retry_after=retry_after))

    def hang_next(self, n: int, seconds: float) -> None:
        """The next n batches wait `seconds`, then the connection closes; nothing kept."""
        self._add(n, SinkInjected(hang=seconds))

    def lose_ack_next(self, n: int, status: int | None = None) -> None:
        """The next n batches are kept, then the connection closes (or `status` answers)."""
        self._add(n, SinkInjected(status=status or 0, lose_ack=True))

    def trickle_next(self, n: int, seconds_per_byte: float) -> None:
        """The next n batches are kept, and their answer comes a byte every so many seconds."""
        self._add(n, SinkInjected(lose_ack=True, trickle=seconds_per_byte))

    def fail_share(self, share: float, status: int = 503, seed: int = 0) -> None:
        """A seeded share of all later batches answer `status` and are not kept."""
        with self._lock:
            self._shares.append(_Share(share, SinkInjected(status=status), seed))

    def lose_ack_share(self, share: float, status: int | None = None, seed: int = 0) -> None:
        """A seeded share of all later batches are kept but their answer is lost."""
        plan = SinkInjected(status=status or 0, lose_ack=True)
        with self._lock:
            self._shares.append(_Share(share, plan, seed))

    def take(self) -> SinkInjected | None:
        """The failure planned for this batch request, if any."""
        planned = self._plans.take()
        if planned is not None:
            return planned
        if self.outage:
            return SinkInjected(status=503)
        with self._lock:
            drawn = [share.draw() for share in self._shares]
        return next((plan for plan in drawn if plan is not None), None)

    def poisoned(self, ids: list[str]) -> bool:
        """Whether any of these emails or anonymousIds is poison."""
        poison = {p.lower() for p in self.poison}
        return bool(poison) and any(i.lower() in poison for i in ids)

    def reset(self) -> None:
        """Back to a healthy sink."""
        self._plans.clear()
        with self._lock:
            self._shares: list[_Share] = []
        self.outage = False
        self.poison: set[str] = set()
        self.oversize_status = 400
        self.redirect: tuple[int, str] | None = None
        self.refuse_all: int | None = None

    def _add(self, n: int, plan: SinkInjected) -> None:
        self._plans.add(n, plan)


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
