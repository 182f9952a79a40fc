"""The activity ledger: messages, rows as last seen, and every event they owed, sent once.

A page's changed rows and the events they owe are written in one transaction, so a crash
either keeps both or neither: a re-read after a crash finds the row unchanged since what was
kept, or changed and owing the same events under the same ids. An event counts as sent only
once Segment accepted its batch; until then delivery finds it, whatever happened between.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    func,
    or_,
    select,
    update,
)

from ..records import RetryPolicy
from ..tracking.records import (
    EventTally,
    ListPass,
    NewEvent,
    Seen,
    StoredMessage,
    TrackEvent,
)
from .activity_sql import (
    column_by_key,
    insert_events,
    known_ids,
    seen_rows,
    stamps,
    upsert_rows,
)
from .rows import CHUNK, dialect_insert, label_due, mark_refused, update_by_ids
from .schema import activity_events, activity_lists, activity_messages
from .transactions import Transactions

E, M, L = activity_events.c, activity_messages.c, activity_lists.c


def _json(value: Mapping[str, Any]) -> str:
    return orjson.dumps(dict(value)).decode()


class ActivityLedger:
    """Reads and writes of the activity tables; each method is one transaction."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    # Messages

    def messages(self, list_id: int) -> dict[int, StoredMessage]:
        """Every message of the list the ledger knows."""
        with self.tx.read() as conn:
            rows = conn.execute(select(activity_messages).where(M.list_id == list_id))
            return {r.message_id: _message(r) for r in rows}

    def save_message(self, list_id: int, message: StoredMessage) -> None:
        """A newly found message and what its events will carry."""
        values = {
            "list_id": list_id,
            "message_id": message.message_id,
            "send_date": message.send_date,
            "sent_at": message.sent_at,
            "properties": _json(message.properties),
        }
        with self.tx.begin() as conn:
            stmt = dialect_insert(conn)(activity_messages).values(values)
            conn.execute(stmt.on_conflict_do_nothing())

    def message_read(
        self,
        list_id: int,
        message_id: int,
        *,
        read_at: datetime | None,
        clicks_mark: str | None,
        backfilled: bool = False,
    ) -> None:
        """How far a pass got: a complete read clears the deferral, a cut-short one sets it."""
        values: dict[str, Any] = {"deferred": read_at is None, "clicks_mark": clicks_mark}
        if read_at is not None:
            values["read_at"] = read_at
        if backfilled:
            values["backfilled"] = True
        stmt = update(activity_messages).where(M.list_id == list_id, M.message_id == message_id)
        with self.tx.begin() as conn:
            conn.execute(stmt.values(values))

    # Rows and events

    def seen(self, list_id: int, message_id: int, keys: Sequence[str]) -> dict[str, Seen]:
        """The rows as last seen, for one page's addresses."""
        with self.tx.read() as conn:
            return seen_rows(conn, list_id, message_id, keys)

    def record(
        self,
        list_id: int,
        message_id: int | None,
        rows: Mapping[str, Seen],
        events: Sequence[NewEvent],
        now: datetime,
        *,
        sent: bool = False,
    ) -> list[TrackEvent]:
        """Rows as now seen and the events they owe, in one transaction; the new events, as
        their track calls will carry them.

        An event already in the ledger (the same fact under the same key) is left as it is.
        `sent`: a baseline adopts the events as already in Segment.
        """
        with self.tx.begin() as conn:
            if rows and message_id is not None:
                upsert_rows(conn, list_id, message_id, rows)
            return _insert_events(conn, list_id, events, now, sent=sent)

    # Delivery: the same shape as the identify outbox

    def pending(
        self, list_id: int, now: datetime, *, after: str = "", limit: int = CHUNK
    ) -> list[tuple[TrackEvent, int]]:
        """Events due for delivery, in id order from `after`, with their attempt counts."""
        query = (
            select(E.message_id, E.event, E.email, E.occurred_at, E.properties, E.attempts)
            .where(*_due(list_id, now), E.message_id > after)
            .order_by(E.message_id)
            .limit(limit)
        )
        with self.tx.read() as conn:
            return [
                (TrackEvent(mid, event, email, at, orjson.loads(props)), attempts)
                for mid, event, email, at, props, attempts in conn.execute(query)
            ]

    def mark_sent(
        self, list_id: int, message_ids: Sequence[str], now: datetime | None = None
    ) -> int:
        """Segment accepted these events: they are sent, for good."""
        values = {
            "sent": True,
            "sent_at": now or datetime.now(UTC),
            "next_attempt_at": None,
            "last_error": None,
        }
        return update_by_ids(self.tx, activity_events, list_id, message_ids, values)

    def mark_rejected(
        self,
        list_id: int,
        refusals: Sequence[tuple[str, int, str]],
        now: datetime,
        policy: RetryPolicy,
    ) -> int:
        """One more attempt per event Segment refused on its own; dead after max_attempts."""
        return mark_refused(self.tx, activity_events, list_id, refusals, now=now, policy=policy)

    def note_waiting(self, list_id: int, now: datetime, label: str) -> int:
        """Say why every event still due waits; no attempt is spent."""
        return label_due(self.tx, activity_events, _due(list_id, now), label)

    def revive_dead(self, list_id: int | None) -> int:
        """`retry`: dead events become due now, under their own ids."""
        where = [E.dead.is_(True)] + ([E.list_id == list_id] if list_id is not None else [])
        stmt = (
            update(activity_events)
            .where(and_(*where))
            .values(dead=False, attempts=0, next_attempt_at=None)
        )
        with self.tx.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    # What status, the metrics and explain show

    def tally(self, list_id: int) -> dict[str, EventTally]:
        """Per event name: pending, sent and dead."""
        query = (
            select(E.event, E.sent, E.dead, func.count())
            .where(E.list_id == list_id)
            .group_by(E.event, E.sent, E.dead)
        )
        out: dict[str, EventTally] = {}
        with self.tx.read() as conn:
            for event, sent, dead, n in conn.execute(query):
                tally = out.setdefault(event, EventTally())
                if sent:
                    tally.sent += n
                elif dead:
                    tally.dead += n
                else:
                    tally.pending += n
        return out

    def backlog(self, list_id: int) -> tuple[int, int]:
        """Events not yet sent: (pending, dead)."""
        tallies = self.tally(list_id).values()
        return sum(t.pending for t in tallies), sum(t.dead for t in tallies)

    def recent(self, email_key: str, limit: int = 20) -> list[dict[str, Any]]:
        """An address's newest events, for `explain`."""
        query = (
            select(E.list_id, E.event, E.occurred_at, E.properties, E.sent, E.dead, E.last_error)
            .where(E.email_key == email_key)
            .order_by(E.occurred_at.desc())
            .limit(limit)
        )
        with self.tx.read() as conn:
            return [
                {
                    "list_id": r.list_id,
                    "event": r.event,
                    "at": r.occurred_at,
                    "properties": orjson.loads(r.properties),
                    "state": "sent" if r.sent else "dead" if r.dead else "pending",
                    "last_error": r.last_error,
                }
                for r in conn.execute(query)
            ]

    def list_pass(self, list_id: int) -> ListPass:
        """The list's last activity pass (an empty one before the first)."""
        with self.tx.read() as conn:
            row = conn.execute(select(activity_lists).where(L.list_id == list_id)).first()
        if row is None:
            return ListPass(list_id)
        return ListPass(
            list_id,
            row.last_pass_at,
            row.status,
            row.error,
            row.open_messages,
            row.deferred,
            row.unsub_mark,
        )

    def save_pass(self, done: ListPass) -> None:
        """Record a pass; the unsubscribe mark only moves forward."""
        values = {
            "list_id": done.list_id,
            "last_pass_at": done.last_pass_at,
            "status": done.status,
            "error": done.error,
            "open_messages": done.open_messages,
            "deferred": done.deferred,
            "unsub_mark": done.unsub_mark,
        }
        with self.tx.begin() as conn:
            stmt = dialect_insert(conn)(activity_lists).values(values)
            update_values = {k: stmt.excluded[k] for k in values if k != "list_id"}
            conn.execute(stmt.on_conflict_do_update(index_elements=["list_id"], set_=update_values))


def _message(r: Any) -> StoredMessage:
    return StoredMessage(
        r.message_id,
        r.send_date,
        r.sent_at,
        orjson.loads(r.properties),
        r.read_at,
        bool(r.deferred),
        r.clicks_mark,
        bool(r.backfilled),
    )


def _insert_events(
    conn: Connection, list_id: int, events: Sequence[NewEvent], now: datetime, *, sent: bool
) -> list[TrackEvent]:
    fresh = _new_events(conn, list_id, events)
    if not fresh:
        return []
    stamp = stamps(conn)
    at_now = stamp(now)
    sent_at = at_now if sent else None
    values = [
        {
            "message_id": e.message_id,
            "list_id": list_id,
            "event": e.event,
            "fact": e.fact,
            "email_key": e.email.lower(),
            "email": e.email,
            "occurred_at": stamp(e.at),
            "properties": _json(e.properties),
            "detected_at": at_now,
            "sent": sent,
            "sent_at": sent_at,
            "attempts": 0,
            "dead": False,
        }
        for e in fresh
    ]
    _adopt_spellings(conn, list_id, values)
    # Only what the ledger does not hold is left; the list's lock keeps any other pass from
    # writing its events meanwhile, so ON CONFLICT is a guard and every row here is new.
    insert_events(conn, values)
    return [
        TrackEvent(e.message_id, e.event, str(v["email"]), e.at, e.properties)
        for v, e in zip(values, fresh, strict=True)
    ]


def _new_events(conn: Connection, list_id: int, events: Sequence[NewEvent]) -> list[NewEvent]:
    """The events whose fact the ledger does not hold yet."""
    # Facts read again (a clicker within the overlap, a row read twice) are most of a quiet
    # pass: one lookup finds them, and the insert that follows takes only what is new.
    known = known_ids(conn, [e.message_id for e in events])
    # One event per id, as the insert keeps one: a fact named twice in a batch is one fact.
    fresh = list({e.message_id: e for e in events if e.message_id not in known}.values())
    if not fresh:
        return []
    # A fact the ledger holds under another write key's id (the key changed, and a clicker or
    # an unsubscribe within the overlap is read again) was sent already: it is not new.
    recorded = _recorded_facts(conn, list_id, list({e.email.lower() for e in fresh}))
    return [e for e in fresh if e.fact not in recorded]


def _recorded_facts(conn: Connection, list_id: int, keys: Sequence[str]) -> set[str]:
    """The facts the ledger holds for these contacts of the list (found by the email index)."""
    return {fact for _, fact in column_by_key(conn, "activity_events", "fact", list_id, keys)}


def _adopt_spellings(conn: Connection, list_id: int, values: list[dict[str, Any]]) -> None:
    """Each event carries its contact's address as the identifies do: the spelling the list's
    subscriber row keeps, else the one its earlier events carried, else the first read here.
    anonymousId is case-sensitive in Segment: another spelling would be another profile."""
    keys = list({v["email_key"] for v in values})
    known = dict(column_by_key(conn, "activity_events", "email", list_id, keys))
    known.update(column_by_key(conn, "members", "email", list_id, keys))
    for v in values:
        v["email"] = known.setdefault(v["email_key"], v["email"])


def _due(list_id: int, now: datetime) -> list[ColumnElement[bool]]:
    """Events delivery would send now: unsent, alive, not backing off."""
    return [
        E.list_id == list_id,
        E.sent == False,  # noqa: E712 - the partial index's own predicate, as written
        E.dead.is_(False),
        or_(E.next_attempt_at.is_(None), E.next_attempt_at <= now),
    ]
