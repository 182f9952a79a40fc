"""One push of one list: pending audience values go to Listrak's bulk profile-field route.

Only current subscribers of the list are written; a value for anyone else is held until
the subscriber scan sees them subscribed, and then goes out by itself. Each request carries
each email once, with all of its changed fields, and is rebuilt from the values as they
stand now. What Listrak answers decides the rows' fate, as on the Segment side: an outage
(5xx, 429, no answer, after the client's own retries) stops the push and spends nothing; a
refusal (400) is split until the contacts at fault stand alone, and only they spend an
attempt. A push that would uncheck most of a field's checked contacts is held.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby
from typing import Any, NamedTuple, Protocol

from ..config import Settings
from ..delivery.deliver import retry_policy, waiting_label
from ..engage.records import (
    Answered,
    PendingValue,
    PushResult,
    PushStatus,
    box_value,
)
from ..errors import BetaRouteError, ListrakAuthError, ListrakError, ListrakUnavailableError
from ..logs import hide_emails
from ..state import Database, describe_db_error

log = logging.getLogger(__name__)

# Listrak refuses a body over what it holds with 400; any other status is about the route,
# the list or the integration, and splitting the body cannot help.
_REFUSED = frozenset({400, 422})
# How long an event's messageId is remembered; a copy after that still loses on its rank.
INBOX_RETENTION = timedelta(days=7)


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


def push_list(ctx: PushContext, list_id: int, *, allow_mass_flip: bool = False) -> PushResult:
    """Send every due value of the list's subscribers; the daemon and `push` both call this."""
    result = PushResult(list_id=list_id, started_at=ctx.clock())
    result.push_id = ctx.db.audiences.start_push(list_id, result.started_at)
    try:
        fields = _unheld_fields(ctx, result, allow_mass_flip)
        _push_fields(ctx, result, fields)
    except BaseException as exc:
        result.status, result.error = PushStatus.FAILED, describe_db_error(exc)
        raise
    finally:
        _finish(ctx, result)
    return result


def prune_inbox(ctx: PushContext) -> int:
    """Forget messageIds older than the retention, so the inbox does not grow forever."""
    return ctx.db.audiences.prune_inbox(ctx.clock() - INBOX_RETENTION)


def _push_fields(ctx: PushContext, result: PushResult, fields: list[int]) -> None:
    try:
        if fields:
            _send_all(ctx, result, fields)
    except ListrakUnavailableError as exc:
        _stop_for_outage(ctx, result, str(exc))
    except ListrakError as exc:
        log.error("list %s: push failed: %s", result.list_id, exc)
        result.status, result.error = PushStatus.FAILED, hide_emails(str(exc))
        result.exit_code = exc.exit_code


def _unheld_fields(ctx: PushContext, result: PushResult, allow_mass_flip: bool) -> list[int]:
    """The list's fields, less those whose push would uncheck too much of the field."""
    fields = ctx.settings.audience_fields(result.list_id)
    if allow_mass_flip:
        return fields
    limits = ctx.settings.push
    for flip in ctx.db.audiences.flips(result.list_id, limits.min_flip_count):
        share = flip.unchecking / flip.checked if flip.checked else 1.0
        if flip.field_id in fields and share > limits.max_flip_ratio:
            result.held_fields.append(flip.field_id)
            result.status = PushStatus.HELD
            held = (
                f"list {result.list_id} field {flip.field_id}: the push would uncheck "
                f"{flip.unchecking} of {flip.checked} checked contacts ({share:.0%}, over "
                f"max_flip_ratio {limits.max_flip_ratio:.0%}); nothing sent for that field. If "
                f"the audience really lost them, run: listrak-source push --list "
                f"{result.list_id} --allow-mass-flip"
            )
            log.error("%s", held)
            result.error = "; ".join(filter(None, [result.error, held]))
    return [f for f in fields if f not in result.held_fields]


def _send_all(ctx: PushContext, result: PushResult, fields: list[int]) -> None:
    """Send the due values in requests of max_contacts_per_request contacts, in email order."""
    size = ctx.settings.push.max_contacts_per_request
    waiting: list[_Contact] = []
    for window in _windows(ctx, result.list_id, fields, size):
        waiting += window
        while len(waiting) >= size and not ctx.stop.is_set():
            _send_request(ctx, result, waiting[:size])
            del waiting[:size]
    if waiting and not ctx.stop.is_set():
        _send_request(ctx, result, waiting)


def _windows(
    ctx: PushContext, list_id: int, fields: list[int], size: int
) -> Iterator[list[_Contact]]:
    """Due values read a window at a time, grouped by email, each email whole."""
    after = ""
    limit = size * len(fields)
    while not ctx.stop.is_set():
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


def _send_request(ctx: PushContext, result: PushResult, contacts: list[_Contact]) -> None:
    """One request, split on a refusal until the contacts at fault stand alone."""
    sending = [_answered(v) for c in contacts for v in c.values]
    ctx.db.audiences.mark_sending(result.list_id, sending, ctx.clock())
    parts = [contacts]
    while parts:
        part = parts.pop()
        result.requests += 1
        try:
            ctx.writer.post_profile_fields(result.list_id, [c.body() for c in part])
        except ListrakError as exc:
            if not _refused(exc):
                raise
            if len(part) == 1:
                _reject(ctx, result, part[0], hide_emails(str(exc)))
            else:
                half = len(part) // 2
                parts += [part[half:], part[:half]]
            continue
        _accept(ctx, result, part)


def _refused(exc: ListrakError) -> bool:
    """Whether Listrak refused what the body carries. An outage, a refused token or a route
    the integration may not use is about every request alike: splitting cannot help, and no
    value is at fault."""
    if isinstance(exc, ListrakUnavailableError | ListrakAuthError | BetaRouteError):
        return False
    return exc.status in _REFUSED


def _accept(ctx: PushContext, result: PushResult, contacts: list[_Contact]) -> None:
    answered = [_answered(v) for c in contacts for v in c.values]
    ctx.db.audiences.mark_sent(result.list_id, answered, ctx.clock())
    result.contacts += len(contacts)
    result.accepted += len(answered)


def _reject(ctx: PushContext, result: PushResult, contact: _Contact, reason: str) -> None:
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
        yield f"{backlog.dead} dead after max_attempts (`retry` re-queues)"
