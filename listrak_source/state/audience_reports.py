"""What status, metrics and `explain` read about the audience direction; reads only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select, true

from .schema import audience_counters, audience_inbox, audience_pushes, audience_values, members
from .transactions import Transactions

_V, _M = audience_values.c, members.c


def _subscribed() -> ColumnElement[bool]:
    return _M.desired_subscribed == true()


def _applied() -> ColumnElement[bool]:
    """Listrak shows the value we hold as sent, as read back after it was sent."""
    return and_(
        _V.pending == false(),
        _V.readback.is_not(None),
        _V.readback == _V.sent,
        or_(_V.sent_at.is_(None), _V.readback_at >= _V.sent_at),
    )


def _waiting() -> ColumnElement[bool]:
    return and_(_V.pending == true(), _V.dead == false())


class AudienceReports:
    """Counts per audience, the receiver's totals, the last push per list, one email's chain."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def summary(self, list_id: int) -> dict[int, dict[str, int]]:
        """field id -> how its values stand: members, pending, held, dead, applied, ..."""
        counts = {
            "values": func.count(),
            "members": func.count().filter(_V.desired == true()),
            "pending": func.count().filter(_waiting(), _subscribed()),
            "held": func.count().filter(_waiting(), or_(_M.email_key.is_(None), ~_subscribed())),
            "dead": func.count().filter(_V.dead == true()),
            "applied": func.count().filter(_applied()),
            "mismatched": func.count().filter(_V.mismatch == true()),
        }
        query = (
            select(_V.field_id, *(c.label(name) for name, c in counts.items()))
            .select_from(audience_values.outerjoin(members, _join()))
            .where(_V.list_id == list_id)
            .group_by(_V.field_id)
        )
        with self.tx.read() as conn:
            rows = conn.execute(query).mappings().all()
        return {int(row["field_id"]): _with_unverified(row) for row in rows}

    def counters(self) -> dict[str, int]:
        """The receiver's durable totals by name."""
        with self.tx.read() as conn:
            rows = conn.execute(select(audience_counters.c.name, audience_counters.c.value))
            return {name: int(value) for name, value in rows}

    def last_push(self, list_id: int) -> dict[str, Any] | None:
        """The list's newest push, JSON-ready."""
        query = (
            select(audience_pushes)
            .where(audience_pushes.c.list_id == list_id)
            .order_by(audience_pushes.c.id.desc())
            .limit(1)
        )
        with self.tx.read() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        out = dict(row)
        for key in ("started_at", "finished_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out

    def recent_pushes(self, list_id: int, limit: int) -> list[str]:
        """The outcomes of the list's newest pushes, newest first."""
        query = (
            select(audience_pushes.c.status)
            .where(audience_pushes.c.list_id == list_id)
            .order_by(audience_pushes.c.id.desc())
            .limit(limit)
        )
        with self.tx.read() as conn:
            return [str(status) for status in conn.execute(query).scalars()]

    def explain(self, email_key: str) -> dict[str, list[dict[str, Any]]]:
        """Everything kept about one email: its events, values and subscriptions."""
        inbox = audience_inbox.c
        with self.tx.read() as conn:
            events = conn.execute(
                select(audience_inbox)
                .where(inbox.email_key == email_key)
                .order_by(inbox.event_us, inbox.message_id)
            )
            values = conn.execute(
                select(audience_values)
                .where(_V.email_key == email_key)
                .order_by(_V.list_id, _V.field_id)
            )
            subscriptions = conn.execute(
                select(_M.list_id, _M.desired_subscribed).where(_M.email_key == email_key)
            )
            return {
                "events": [dict(row) for row in events.mappings()],
                "values": [dict(row) for row in values.mappings()],
                "subscriptions": [dict(row) for row in subscriptions.mappings()],
            }


def _join() -> ColumnElement[bool]:
    return and_(_M.list_id == _V.list_id, _M.email_key == _V.email_key)


def _with_unverified(row: Any) -> dict[str, int]:
    """Counts, plus the values sent (or learnt) that no read-back has confirmed yet."""
    counts = {name: int(value) for name, value in row.items() if name != "field_id"}
    settled = sum(counts[name] for name in ("pending", "held", "dead", "applied"))
    counts["unverified"] = counts["values"] - settled
    return counts
