"""One push of one list: pending audience values go to Listrak's bulk profile-field route.

Only current subscribers of the list are written; a value for anyone else is held until
the subscriber scan sees them subscribed, and then goes out by itself. Each request carries
each email once, with all of its changed fields, and is rebuilt from the values as they
stand now. What Listrak answers decides the rows' fate, as on the Segment side: an outage
(5xx, 429, no answer, after the client's own retries) stops the push and spends nothing; a
refusal (400) is split until the contacts at fault stand alone, and only they spend an
attempt; a contact still refused alone is tried one field at a time, and a field Listrak
refuses for everyone is a configuration problem of that field alone. Unchecks are weighed
against the field's checked boxes over a window of time, request by request, and a field
that would lose too many is held. One process pushes a list at a time.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, NamedTuple, Protocol

from ..config import Settings
from ..delivery.deliver import retry_policy, waiting_label
from ..engage.guard import FlipGuard
from ..engage.records import (
    Answered,
    PendingValue,
    PushResult,
    PushStatus,
    box_value,
)
from ..errors import (
    EXIT_CONFIG,
    BetaRouteError,
    ListBusyError,
    ListrakAuthError,
    ListrakError,
    ListrakUnavailableError,
)
from ..logs import hide_emails
from ..state import Database, describe_db_error
from ..state.locks import PUSH_LOCK, HeldLock, new_holder

log = logging.getLogger(__name__)

# Listrak refuses a body over what it holds with 400; any other status is about the route,
# the list or the integration, and splitting the body cannot help.
_REFUSED = frozenset({400, 422})
# How long an event's messageId is remembered; a copy after that still loses on its rank.
INBOX_RETENTION = timedelta(days=7)
# Contacts refused on one field alone, with no value of that field accepted, before the
# field is taken to be refused for everyone (deleted, or retyped, in Listrak).
_FIELD_REFUSED_AFTER = 2


class ProfileFieldWriter(Protocol):
    """The part of the Listrak client a push needs: the bulk profile-field route."""

    def post_profile_fields(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PushContext:
    """Everything a push touches, built by `cli/wiring.py`; tests hand in their own clock."""

    settings: Settings
    db: Database
    writer: ProfileFieldWriter
    clock: Callable[[], datetime] = _utcnow
    stop: threading.Event = field(default_factory=threading.Event)
    holder: str = field(default_factory=new_holder)
    # Told the values accepted so far after each request: a push can take minutes.
    on_progress: Callable[[str, int], None] | None = None


class _Contact(NamedTuple):
    """One email's changed fields, sent together in one request."""

    email: str
    values: tuple[PendingValue, ...]

    def body(self) -> dict[str, object]:
        """The bulk route's item for this contact."""
        values = [
            {"segmentationFieldId": v.field_id, "value": box_value(v.desired)} for v in self.values
        ]
        return {"emailAddress": self.email, "segmentationFieldValues": values}

    def without(self, fields: Collection[int]) -> _Contact | None:
        """The contact less the values of these fields; None when nothing is left."""
        kept = tuple(v for v in self.values if v.field_id not in fields)
        return _Contact(self.email, kept) if kept else None

    def unchecks(self) -> Counter[int]:
        """Per field, the boxes this contact's values uncheck."""
        return Counter(v.field_id for v in self.values if not v.desired and v.checked)

    def checks(self) -> Counter[int]:
        """Per field, the boxes this contact's values check that were not checked."""
        return Counter(v.field_id for v in self.values if v.desired and not v.checked)


@dataclass
class _Push:
    """One push in progress: what it touches, its outcome so far, and what it learnt."""

    ctx: PushContext
    result: PushResult
    lock: HeldLock
    fields: list[int]  # the fields still sent; a held or refused field leaves it
    guard: FlipGuard | None = None  # None: an operator allowed a mass flip
    refused: set[int] = field(default_factory=set)  # fields Listrak refuses for everyone
    strikes: Counter[int] = field(default_factory=Counter)
    applied: set[int] = field(default_factory=set)  # fields Listrak accepted a value of

    @property
    def skipped(self) -> set[int]:
        return set(self.result.held_fields) | self.refused


def push_list(ctx: PushContext, list_id: int, *, allow_mass_flip: bool = False) -> PushResult:
    """Send every due value of the list's subscribers; the daemon and `push` both call this.
    Another process pushing the list makes this one a `skipped` push that sends nothing."""
    try:
        with ctx.db.locks.hold(list_id, ctx.holder, PUSH_LOCK) as lock:
            return _push_locked(ctx, list_id, lock, allow_mass_flip)
    except ListBusyError as exc:
        log.warning("%s", exc)
        return PushResult(list_id, ctx.clock(), status=PushStatus.SKIPPED, error=str(exc))


def _push_locked(
    ctx: PushContext, list_id: int, lock: HeldLock, allow_mass_flip: bool
) -> PushResult:
    result = PushResult(list_id=list_id, started_at=ctx.clock())
    # Whoever left a push open has died: this process holds the list's push lock now.
    ctx.db.audiences.fail_stale_pushes(list_id, result.started_at)
    result.push_id = ctx.db.audiences.start_push(list_id, result.started_at)
    push = _Push(ctx, result, lock, ctx.settings.audience_fields(list_id))
    try:
        _guard(push, allow_mass_flip)
        _push_fields(push)
    except BaseException as exc:
        result.status, result.error = PushStatus.FAILED, describe_db_error(exc)
        raise
    finally:
        _finish(ctx, result)
    return result


def prune_inbox(ctx: PushContext) -> int:
    """Forget messageIds older than the retention, so the inbox does not grow forever, and
    unchecks the mass-flip guard no longer weighs."""
    ctx.db.audiences.prune_unchecks(ctx.clock() - ctx.settings.push.flip_window)
    return ctx.db.audiences.prune_inbox(ctx.clock() - INBOX_RETENTION)


def _push_fields(push: _Push) -> None:
    result = push.result
    try:
        if push.fields:
            _send_all(push)
    except ListrakUnavailableError as exc:
        _stop_for_outage(push.ctx, result, str(exc))
    except ListrakError as exc:
        log.error("list %s: push failed: %s", result.list_id, exc)
        result.status, result.error = PushStatus.FAILED, hide_emails(str(exc))
        result.exit_code = exc.exit_code


def _guard(push: _Push, allow_mass_flip: bool) -> None:
    """Weigh each field's due unchecks with those of the window; hold the fields over it."""
    ctx, list_id = push.ctx, push.result.list_id
    if allow_mass_flip:
        ctx.db.audiences.forgive_unchecks(list_id)
        return
    limits, now = ctx.settings.push, push.result.started_at
    counts = ctx.db.audiences.flip_counts(list_id, push.fields, now, now - limits.flip_window)
    checked = functools.partial(ctx.db.audiences.checked, list_id)
    push.guard = FlipGuard.over(counts, limits.max_flip_ratio, limits.min_flip_count, checked)
    for c in counts:
        if not push.guard.allows(c.field_id, c.pending):
            _hold(push, c.field_id, c.pending)


def _hold(push: _Push, field_id: int, more: int) -> None:
    """Nothing more of this field goes out in this push: it would uncheck too much."""
    assert push.guard is not None
    result, limits = push.result, push.ctx.settings.push
    push.fields.remove(field_id)
    result.held_fields.append(field_id)
    result.status = PushStatus.HELD
    held = (
        f"list {result.list_id} field {field_id}: the push {push.guard.describe(field_id, more)}"
        f" within push.flip_window, over max_flip_ratio {limits.max_flip_ratio:.0%}); nothing "
        f"more sent for that field. If the audience really lost them, run: listrak-source "
        f"push --list {result.list_id} --allow-mass-flip"
    )
    log.error("%s", held)
    result.error = "; ".join(filter(None, [result.error, held]))


def _send_all(push: _Push) -> None:
    """Send the due values in requests of max_contacts_per_request contacts, in email order."""
    stop = push.ctx.stop
    size = push.ctx.settings.push.max_contacts_per_request
    waiting: list[_Contact] = []
    for window in _windows(push, size):
        waiting += window
        while len(waiting) >= size and not stop.is_set():
            _send_request(push, waiting[:size])
            del waiting[:size]
    if waiting and not stop.is_set():
        _send_request(push, waiting)


def _windows(push: _Push, size: int) -> Iterator[list[_Contact]]:
    """Due values read a window at a time, grouped by email, each email whole."""
    ctx, list_id, fields = push.ctx, push.result.list_id, push.fields
    after = ""
    while fields and not ctx.stop.is_set():
        limit = size * len(fields)
        rows = ctx.db.audiences.sendable(list_id, fields, ctx.clock(), after=after, limit=limit)
        contacts = _contacts(rows, fields=len(fields), complete=len(rows) < limit)
        if not contacts:
            return
        after = contacts[-1].values[0].email_key
        yield contacts


def _contacts(rows: Sequence[PendingValue], *, fields: int, complete: bool) -> list[_Contact]:
    """Rows grouped by email; the last email of a full window may have more rows beyond it,
    so unless it has one for every field it is left to be read whole next time."""
    contacts = [
        _Contact(group[0].email, tuple(group))
        for group in (list(g) for _, g in groupby(rows, key=lambda r: r.email_key))
    ]
    if complete or len(contacts) < 2 or len(contacts[-1].values) == fields:
        return contacts
    return contacts[:-1]


def _without(contacts: Sequence[_Contact], fields: Collection[int]) -> list[_Contact]:
    if not fields:
        return list(contacts)
    return [kept for c in contacts if (kept := c.without(fields)) is not None]


def _guarded(push: _Push, contacts: list[_Contact]) -> list[_Contact]:
    """The request less the fields held or refused; a field whose unchecks in it would go
    over the window's share is held now (exits may have arrived since the push began)."""
    contacts = _without(contacts, push.skipped)
    if push.guard is not None:
        unchecks = sum((c.unchecks() for c in contacts), Counter[int]())
        for field_id, more in sorted(unchecks.items()):
            if not push.guard.allows(field_id, more):
                _hold(push, field_id, more)
        contacts = _without(contacts, push.result.held_fields)
    return contacts


def _send_request(push: _Push, contacts: list[_Contact]) -> None:
    """One request, split on a refusal until the contacts (then the values) at fault stand
    alone."""
    ctx, result = push.ctx, push.result
    parts = [_guarded(push, contacts)]
    while parts:
        part = _without(parts.pop(), push.refused)
        if not part:
            continue
        push.lock.verify()
        ctx.db.audiences.mark_sending(result.list_id, _answers(part), ctx.clock())
        result.requests += 1
        try:
            ctx.writer.post_profile_fields(result.list_id, [c.body() for c in part])
        except ListrakError as exc:
            if not _refused(exc):
                raise
            parts += _split(push, part, hide_emails(str(exc)))
            continue
        _accept(push, part)
    if ctx.on_progress is not None:
        ctx.on_progress("pushed", result.accepted)


def _split(push: _Push, part: list[_Contact], reason: str) -> list[list[_Contact]]:
    """The halves of a refused body; a contact refused alone, one value at a time."""
    if len(part) > 1:
        half = len(part) // 2
        return [part[half:], part[:half]]
    contact = part[0]
    if len(contact.values) > 1:
        # One field Listrak no longer takes must not keep the contact's others from it.
        return [[_Contact(contact.email, (v,))] for v in reversed(contact.values)]
    field_id = contact.values[0].field_id
    push.strikes[field_id] += 1
    if push.strikes[field_id] >= _FIELD_REFUSED_AFTER and field_id not in push.applied:
        _field_refused(push, field_id, reason)
    else:
        _reject(push, contact, reason)
    return []


def _field_refused(push: _Push, field_id: int, reason: str) -> None:
    """Listrak refuses the field for everyone: a configuration problem of that field alone.
    Its values wait and spend no attempt; the list's other fields go on."""
    result = push.result
    push.fields.remove(field_id)
    push.refused.add(field_id)
    problem = (
        f"list {result.list_id} field {field_id}: Listrak refuses it for every contact (was it "
        f"deleted, or made other than a check box or radio button?); its values wait, and "
        f"`listrak-source check` shows what is wrong: {reason}"
    )
    log.error("%s", problem)
    result.error = "; ".join(filter(None, [result.error, problem]))
    result.exit_code = EXIT_CONFIG


def _refused(exc: ListrakError) -> bool:
    """Whether Listrak refused what the body carries. An outage, a refused token or a route
    the integration may not use is about every request alike: splitting cannot help, and no
    value is at fault."""
    if isinstance(exc, ListrakUnavailableError | ListrakAuthError | BetaRouteError):
        return False
    return exc.status in _REFUSED


def _answers(contacts: Sequence[_Contact]) -> list[Answered]:
    return [_answered(v) for c in contacts for v in c.values]


def _accept(push: _Push, contacts: list[_Contact]) -> None:
    ctx, result = push.ctx, push.result
    answered = _answers(contacts)
    unchecks = sum((c.unchecks() for c in contacts), Counter[int]())
    guard = push.guard
    if guard is None:
        unchecks.clear()  # an operator allowed them: not weighed against the window again
    else:
        checks = sum((c.checks() for c in contacts), Counter[int]())
        for field_id in unchecks.keys() | checks.keys():
            guard.spend(field_id, unchecks[field_id], checks[field_id])
    ctx.db.audiences.mark_sent(result.list_id, answered, ctx.clock(), unchecks)
    push.applied.update(a.field_id for a in answered)
    result.contacts += len(contacts)
    result.accepted += len(answered)


def _reject(push: _Push, contact: _Contact, reason: str) -> None:
    ctx, result = push.ctx, push.result
    refused = [_answered(v, reason) for v in contact.values]
    policy = retry_policy(ctx.settings)
    dead = ctx.db.audiences.mark_rejected(result.list_id, refused, ctx.clock(), policy)
    result.rejected += len(refused)
    log.error(
        "list %s: Listrak refused a contact's %d value(s)%s: %s",
        result.list_id,
        len(refused),
        f", {dead} now dead" if dead else "",
        reason,
    )


def _answered(value: PendingValue, error: str | None = None) -> Answered:
    return Answered(value.field_id, value.email_key, value.desired, value.attempts, error)


def _stop_for_outage(ctx: PushContext, result: PushResult, reason: str) -> None:
    """Every due value stays due, labelled with why it waits; no attempt is spent."""
    reason = hide_emails(reason)
    left = ctx.db.audiences.note_waiting(result.list_id, ctx.clock(), waiting_label(reason))
    result.outage = reason
    log.error("list %s: %s; the push stops, %d value(s) wait", result.list_id, reason, left)


def _finish(ctx: PushContext, result: PushResult) -> None:
    result.finished_at = ctx.clock()
    result.backlog = ctx.db.audiences.backlog(result.list_id)
    _conclude(result, stopped=ctx.stop.is_set())
    ctx.db.audiences.finish_push(result)


def _conclude(result: PushResult, *, stopped: bool) -> None:
    """`ok` only when Listrak accepted every value of a subscriber that was pending."""
    left = result.backlog.pending + result.backlog.dead
    if result.status == PushStatus.RUNNING:
        if stopped and left:
            result.status = PushStatus.STOPPED
        else:
            result.status = PushStatus.PARTIAL if left or result.rejected else PushStatus.OK
    shortfall = "; ".join(_shortfall(result))
    if shortfall:
        result.error = "; ".join(filter(None, [result.error, shortfall]))


def _shortfall(result: PushResult) -> Iterator[str]:
    backlog = result.backlog
    if backlog.pending:
        why = f" ({result.outage})" if result.outage else ""
        yield f"{backlog.pending} value(s) not yet accepted by Listrak{why}"
    if result.rejected:
        yield f"{result.rejected} value(s) refused by Listrak (see status)"
    if backlog.dead:
        yield (
            f"{backlog.dead} dead: refused max_attempts times, or never applied by Listrak "
            "(see status; `retry` re-queues)"
        )
