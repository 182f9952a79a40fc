"""The audience direction's tables: events in, desired values out to Listrak, and read back.

Each public method is one transaction. A request's events are committed together with the
desired values they set and the counters they move, so an answered 200 is never lost and a
retried request finds its events already seen.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)

from ..engage.coalesce import fold
from ..engage.guard import FieldCounts
from ..engage.ingest import Ingest
from ..engage.mapping import Mapped
from ..engage.readback import StoredValue, Verdict, judge
from ..engage.records import (
    Answered,
    Backlog,
    CommitResult,
    PendingValue,
    PushResult,
    PushStatus,
)
from ..records import RetryPolicy
from . import audience_sql
from .rows import chunks, dialect_insert
from .schema import (
    audience_counters,
    audience_inbox,
    audience_pushes,
    audience_unchecks,
    audience_values,
    members,
)
from .transactions import Transactions

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STALE_PUSH = "the process pushing the list stopped before the push finished"
_UNAPPLIED = "never applied: Listrak accepted it and did not show it {} times in a row"
_MICROSECOND = timedelta(microseconds=1)
_V, _M = audience_values.c, members.c


def event_us(moment: datetime) -> int:
    """An aware instant as whole microseconds since the epoch: exact, and ordered in SQL."""
    return (moment - EPOCH) // _MICROSECOND


def from_event_us(value: int) -> datetime:
    """The instant event_us() encoded."""
    return EPOCH + value * _MICROSECOND


class Audiences:
    """Receiver commits, push reads and answers, the read-back, and what status shows."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def commit(self, ingest: Ingest, now: datetime) -> CommitResult:
        """Keep a request's new events and the values they win, with the counters, at once."""
        unique, copies = _first_copies(ingest.memberships)
        with self.tx.begin() as conn:
            new_ids = _record_events(conn, unique, now)
            fresh = [m for m in unique if m.membership.message_id in new_ids]
            recorded = _upsert_values(conn, fold(fresh).values(), now)
            result = CommitResult(
                received=ingest.accepted + sum(ingest.ignored.values()),
                duplicates=copies + len(unique) - len(fresh),
                superseded=len(fresh) - recorded,
                recorded=recorded,
                ignored=ingest.ignored,
            )
            _add_counters(conn, _counts(result))
        return result

    def sendable(
        self, list_id: int, fields: Sequence[int], now: datetime, *, after: str, limit: int
    ) -> list[PendingValue]:
        """Due values of current subscribers, in email order from `after`."""
        query = (
            select(_V.email_key, _M.email, _V.field_id, _V.desired, _V.attempts, _maybe_checked())
            .join_from(audience_values, members, _member_join())
            .where(
                *_due(list_id, now),
                _M.desired_subscribed == true(),
                _V.email_key > after,
                _V.field_id.in_(list(fields)),
            )
            .order_by(_V.email_key, _V.field_id)
            .limit(limit)
        )
        with self.tx.read() as conn:
            return [PendingValue(*row) for row in conn.execute(query)]

    def mark_sending(self, list_id: int, values: Sequence[Answered], now: datetime) -> None:
        """Before a request: what Listrak holds is unknown until it answers. A crash in between
        leaves the values pending, so they are sent again whatever arrives meanwhile."""
        stmt = (
            update(audience_values)
            .where(*_row(list_id))
            .values(sent=None, sent_at=now, pending=True)
        )
        params = [{"b_field": a.field_id, "b_key": a.email_key} for a in _in_key_order(values)]
        if params:
            with self.tx.begin() as conn:
                conn.execute(stmt, params)

    def mark_sent(
        self,
        list_id: int,
        answered: Sequence[Answered],
        now: datetime,
        unchecks: Mapping[int, int] | None = None,
    ) -> None:
        """Listrak took these values: they are sent, and pending only if desired moved on.
        `unchecks` (field id -> boxes this request unchecked) join the mass-flip window."""
        stmt = (
            update(audience_values)
            .where(*_row(list_id))
            .values(
                sent=bindparam("b_value"),
                sent_at=now,
                pending=_V.desired != bindparam("b_value"),
                attempts=0,
                next_attempt_at=None,
                last_error=None,
                dead=False,
                mismatch=False,
            )
        )
        params = [
            {"b_field": a.field_id, "b_key": a.email_key, "b_value": a.value}
            for a in _in_key_order(answered)
        ]
        spent = [
            {"list_id": list_id, "field_id": f, "sent_at": now, "count": n}
            for f, n in sorted((unchecks or {}).items())
            if n
        ]
        if params:
            with self.tx.begin() as conn:
                conn.execute(stmt, params)
                if spent:
                    conn.execute(insert(audience_unchecks), spent)

    def mark_rejected(
        self, list_id: int, refused: Sequence[Answered], now: datetime, policy: RetryPolicy
    ) -> int:
        """One more attempt for each value Listrak refused on its own; returns those now dead."""
        stmt = (
            update(audience_values)
            # A value that changed since it was sent gets a clean slate, not this refusal.
            .where(*_row(list_id), _V.desired == bindparam("b_value"))
            .values(
                attempts=bindparam("b_attempts"),
                next_attempt_at=bindparam("b_next"),
                last_error=bindparam("b_error"),
                dead=bindparam("b_dead"),
            )
        )
        params = [_refusal(a, now, policy) for a in _in_key_order(refused)]
        if params:
            with self.tx.begin() as conn:
                conn.execute(stmt, params)
        return sum(1 for p in params if p["b_dead"])

    def note_waiting(self, list_id: int, now: datetime, label: str) -> int:
        """Say why every due value still waits; no attempt is spent."""
        stmt = update(audience_values).where(*_due(list_id, now)).values(last_error=label[:1000])
        with self.tx.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def flip_counts(
        self, list_id: int, fields: Sequence[int], now: datetime, since: datetime
    ) -> list[FieldCounts]:
        """Each field's unchecks due now to current subscribers, and those sent since `since`:
        what the mass-flip guard weighs. Reads pending values only."""
        unchecks = (
            select(_V.field_id, func.count())
            .join_from(audience_values, members, _member_join())
            .where(
                *_due(list_id, now),
                _V.desired == false(),
                _maybe_checked(),
                _M.desired_subscribed == true(),
            )
            .group_by(_V.field_id)
        )
        u = audience_unchecks.c
        recent = (
            select(u.field_id, func.sum(u.count))
            .where(u.list_id == list_id, u.sent_at >= since)
            .group_by(u.field_id)
        )
        with self.tx.read() as conn:
            pending = {int(f): int(n) for f, n in conn.execute(unchecks)}
            sent = {int(f): int(n) for f, n in conn.execute(recent)}
        return [FieldCounts(f, pending.get(f, 0), sent.get(f, 0)) for f in fields]

    def checked(self, list_id: int, field_id: int) -> int:
        """The field's boxes checked among current subscribers, as far as is known."""
        query = (
            select(func.count())
            .join_from(audience_values, members, _member_join())
            .where(
                _V.list_id == list_id,
                _V.field_id == field_id,
                _maybe_checked(),
                _M.desired_subscribed == true(),
            )
        )
        with self.tx.read() as conn:
            return int(conn.execute(query).scalar_one())

    def forgive_unchecks(self, list_id: int) -> None:
        """An operator allowed a mass flip: the window starts again from what is checked now."""
        with self.tx.begin() as conn:
            conn.execute(delete(audience_unchecks).where(audience_unchecks.c.list_id == list_id))

    def prune_unchecks(self, before: datetime) -> int:
        """Forget unchecks older than the guard's window."""
        with self.tx.begin() as conn:
            stmt = delete(audience_unchecks).where(audience_unchecks.c.sent_at < before)
            return int(conn.execute(stmt).rowcount)

    def fail_stale_pushes(self, list_id: int, now: datetime) -> None:
        """Pushes left `running` by a killed process are closed once we hold the push lock."""
        stmt = (
            update(audience_pushes)
            .where(
                audience_pushes.c.list_id == list_id,
                audience_pushes.c.status == PushStatus.RUNNING,
            )
            .values(status=PushStatus.FAILED, finished_at=now, error=STALE_PUSH)
        )
        with self.tx.begin() as conn:
            conn.execute(stmt)

    def backlog(self, list_id: int) -> Backlog:
        """Pending values of a list: to send, held for non-subscribers, dead."""
        subscribed = _M.desired_subscribed == true()
        query = (
            select(
                func.count().filter(_V.dead == false(), subscribed),
                func.count().filter(_V.dead == false(), or_(_M.email_key.is_(None), ~subscribed)),
                func.count().filter(_V.dead == true()),
            )
            .select_from(audience_values.outerjoin(members, _member_join()))
            .where(*_pending(list_id))
        )
        with self.tx.read() as conn:
            pending, held, dead = conn.execute(query).one()
        return Backlog(int(pending), int(held), int(dead))

    def read_back(
        self,
        list_id: int,
        observed: Iterable[tuple[str, Mapping[int, bool]]],
        now: datetime,
        grace: timedelta,
        max_mismatches: int = 3,
    ) -> int:
        """Judge stored values against what a scan page shows; returns the mismatches found.
        A value found not applied `max_mismatches` times in a row is dead."""
        seen = dict(observed)
        with self.tx.begin() as conn:
            stored = _stored_values(conn, list_id, list(seen))
            verdicts = [
                verdict
                for row in stored
                if row.field_id in seen[row.email_key]
                and (verdict := judge(row, seen[row.email_key][row.field_id], now, grace))
            ]
            mismatched = _write_verdicts(conn, list_id, verdicts, now, max_mismatches)
            if mismatched:
                _add_counters(conn, {"mismatched": mismatched})
        return mismatched

    def prune_inbox(self, before: datetime) -> int:
        """Forget events received before this instant; later copies still lose on rank."""
        with self.tx.begin() as conn:
            stmt = delete(audience_inbox).where(audience_inbox.c.received_at < before)
            return int(conn.execute(stmt).rowcount)

    def revive_dead(self, list_id: int | None) -> int:
        """`retry`: dead values, and values backing off after a refusal, become due now (the
        operator has fixed what Listrak refused, and should not wait hours to see it)."""
        where = [or_(_V.dead == true(), _V.attempts > 0, _V.next_attempt_at.is_not(None))]
        where += [_V.list_id == list_id] if list_id is not None else []
        stmt = update(audience_values).where(*where).values(dead=False, attempts=0, mismatches=0)
        with self.tx.begin() as conn:
            return int(conn.execute(stmt.values(next_attempt_at=None)).rowcount)

    def start_push(self, list_id: int, started_at: datetime) -> int:
        """Record a push as running and return its id."""
        stmt = insert(audience_pushes).values(
            list_id=list_id, started_at=started_at, status=PushStatus.RUNNING
        )
        with self.tx.begin() as conn:
            return int(conn.execute(stmt).inserted_primary_key[0])  # type: ignore[index]

    def finish_push(self, result: PushResult) -> None:
        """Close a push with its outcome."""
        stmt = (
            update(audience_pushes)
            .where(audience_pushes.c.id == result.push_id)
            .values(
                status=result.status,
                finished_at=result.finished_at,
                accepted=result.accepted,
                rejected=result.rejected,
                held=result.backlog.held,
                requests=result.requests,
                error=result.error,
            )
        )
        with self.tx.begin() as conn:
            conn.execute(stmt)


def _in_key_order(values: Iterable[Answered]) -> list[Answered]:
    """Rows are written in primary-key order everywhere, so concurrent writers never deadlock."""
    return sorted(values, key=lambda a: (a.field_id, a.email_key))


def _member_join() -> ColumnElement[bool]:
    return and_(_M.list_id == _V.list_id, _M.email_key == _V.email_key)


def _row(list_id: int) -> list[ColumnElement[bool]]:
    """One value, by the bound b_field and b_key."""
    return [
        _V.list_id == list_id,
        _V.field_id == bindparam("b_field"),
        _V.email_key == bindparam("b_key"),
    ]


def _pending(list_id: int) -> list[ColumnElement[bool]]:
    """The partial index's own condition, so these queries read pending rows only."""
    return [_V.list_id == list_id, _V.pending == true()]


def _due(list_id: int, now: datetime) -> list[ColumnElement[bool]]:
    return [
        *_pending(list_id),
        _V.dead == false(),
        or_(_V.next_attempt_at.is_(None), _V.next_attempt_at <= now),
    ]


def _maybe_checked() -> ColumnElement[bool]:
    """Listrak holds the box checked, as far as is known: last sent (or read back) checked,
    or sent something whose answer never came, which may have been `on`."""
    return or_(_V.sent == true(), and_(_V.sent.is_(None), _V.sent_at.is_not(None)))


def _refusal(answer: Answered, now: datetime, policy: RetryPolicy) -> dict[str, object]:
    made = answer.attempts + 1
    return {
        "b_field": answer.field_id,
        "b_key": answer.email_key,
        "b_value": answer.value,
        "b_attempts": made,
        "b_next": now + policy.delay(made),
        "b_error": f"rejected: {answer.error}"[:1000],
        "b_dead": made >= policy.max_attempts,
    }


def _first_copies(items: Sequence[Mapped]) -> tuple[list[Mapped], int]:
    """Each messageId's first copy in the request, and how many copies followed."""
    unique: dict[str, Mapped] = {}
    for item in items:
        unique.setdefault(item.membership.message_id, item)
    return list(unique.values()), len(items) - len(unique)


def _record_events(conn: Connection, items: Sequence[Mapped], now: datetime) -> set[str]:
    """Insert the events; the messageIds that were new (a copy of a kept one is not)."""
    when = audience_sql.bind_time(conn)(now)
    rows = [
        (
            m.membership.message_id,
            when,
            m.mapping.list_id,
            m.mapping.field_id,
            m.membership.email_key,
            m.membership.member,
            event_us(m.membership.timestamp),
        )
        for m in sorted(items, key=lambda m: m.membership.message_id)
    ]
    return audience_sql.insert_events(conn, rows)


def _upsert_values(conn: Connection, winners: Iterable[Mapped], now: datetime) -> int:
    """Each target's newest event becomes its desired value where it outranks the stored one."""
    when = audience_sql.bind_time(conn)(now)
    rows = [
        (
            m.mapping.list_id,
            m.mapping.field_id,
            m.membership.email_key,
            m.membership.email,
            m.membership.member,
            event_us(m.membership.timestamp),
            m.membership.message_id,
            when,
        )
        for m in sorted(winners, key=lambda m: m.target)
    ]
    return audience_sql.upsert_values(conn, rows)


def _counts(result: CommitResult) -> dict[str, int]:
    counts = {
        "received": result.received,
        "duplicates": result.duplicates,
        "superseded": result.superseded,
        "recorded": result.recorded,
    }
    counts.update({f"ignored:{reason}": n for reason, n in result.ignored.items()})
    return counts


def _add_counters(conn: Connection, counts: Mapping[str, int]) -> None:
    rows = [{"name": name, "value": n} for name, n in sorted(counts.items()) if n]
    if not rows:
        return
    stmt = dialect_insert(conn)(audience_counters)
    stmt = stmt.on_conflict_do_update(
        index_elements=[audience_counters.c.name],
        set_={"value": audience_counters.c.value + stmt.excluded.value},
    )
    conn.execute(stmt, rows)


def _stored_values(conn: Connection, list_id: int, keys: Sequence[str]) -> list[StoredValue]:
    query = select(
        _V.email_key, _V.field_id, _V.desired, _V.sent, _V.sent_at, _V.readback, _V.readback_at
    ).where(_V.list_id == list_id, _V.email_key.in_(bindparam("keys", expanding=True)))
    out: list[StoredValue] = []
    for chunk in chunks(keys):
        out += [StoredValue(*row) for row in conn.execute(query, {"keys": list(chunk)})]
    return out


def _write_verdicts(
    conn: Connection, list_id: int, verdicts: Sequence[Verdict], now: datetime, most: int
) -> int:
    """Write each verdict whose row still holds the sent value it was judged by; returns the
    mismatches written. Pending is worked out from the row's desired value as it is now."""
    written = 0
    ordered = sorted(verdicts, key=lambda v: (v.field_id, v.email_key))
    for mismatch in (True, False):
        part = [_verdict_params(v) for v in ordered if v.mismatch == mismatch]
        if part:
            stmt = _verdict_update(list_id, mismatch, most).values(readback_at=now)
            count = conn.execute(stmt, part).rowcount
            written += count if mismatch else 0
    return written


def _verdict_update(list_id: int, mismatch: bool, most: int) -> Any:
    """A mismatch counts one more in a row, and the `most`th kills a value still pending:
    Listrak accepts it and never applies it. A value Listrak shows starts the count again."""
    seen: Any = bindparam("b_seen")
    again = _V.mismatches + 1
    dies = and_(again >= most, _V.desired != seen)
    counted: dict[str, Any] = {
        "mismatches": again,
        "dead": or_(_V.dead == true(), dies),
        "last_error": case((dies, literal(_UNAPPLIED.format(most))), else_=_V.last_error),
    }
    return (
        update(audience_values)
        .where(
            *_row(list_id),
            _V.sent.is_not_distinct_from(bindparam("b_sent")),
            _V.sent_at.is_not_distinct_from(bindparam("b_sent_at")),
        )
        .values(
            readback=seen,
            sent=seen,
            pending=_V.desired != seen,
            mismatch=mismatch,
            **(counted if mismatch else {"mismatches": 0}),
        )
    )


def _verdict_params(verdict: Verdict) -> dict[str, object]:
    return {
        "b_field": verdict.field_id,
        "b_key": verdict.email_key,
        "b_seen": verdict.observed,
        "b_mismatch": verdict.mismatch,
        "b_sent": verdict.sent,
        "b_sent_at": verdict.sent_at,
    }
