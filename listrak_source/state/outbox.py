"""The delivery side of the members table: what is due, what Segment took, what failed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, or_, select, update

from ..records import Pending, RetryPolicy
from .rows import CHUNK, carrying_message, clean_slate, label_due, mark_refused, update_by_ids
from .schema import members
from .transactions import Transactions

# sent := desired, and the row is no longer pending nor in doubt: Segment holds desired.
# What acceptance and baseline both do.
_ACCEPTED = clean_slate(
    sent_subscribed=members.c.desired_subscribed,
    sent_user_id=members.c.desired_user_id,
    message_id=None,
    detected_at=None,
    in_doubt=False,
)


class Outbox:
    """Pending rows out, accepted and failed message ids back in."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def pending(
        self, list_id: int, now: datetime, *, after: str = "", limit: int = CHUNK
    ) -> list[tuple[Pending, int]]:
        """Rows due for delivery, in message-id order from `after`, with their attempt counts.

        Message-id order lets one partial index serve both this and mark_sent. A row that
        changes mid-delivery gets a new id, so it may be passed over until the next run;
        it is never sent twice under one id, nor under a stale one as accepted.
        """
        c = members.c
        query = (
            select(
                c.email_key,
                c.email,
                c.desired_subscribed,
                c.desired_user_id,
                c.message_id,
                c.detected_at,
                c.attempts,
            )
            .where(*_due(list_id, now), c.message_id > after)
            .order_by(c.message_id)
            .limit(limit)
        )
        with self.tx.begin() as conn:
            return [
                (Pending(list_id, key, email, bool(sub), uid, mid, detected), attempts)
                for key, email, sub, uid, mid, detected, attempts in conn.execute(query)
            ]

    def mark_posted(self, list_id: int, message_ids: Sequence[str]) -> None:
        """These messages are about to be posted: from now on Segment may hold them, even
        if no answer comes back, so their rows are in doubt until one is accepted."""
        doubt = {"in_doubt": True}
        update_by_ids(self.tx, members, list_id, message_ids, doubt, members.c.in_doubt.is_(False))

    def mark_sent(self, list_id: int, message_ids: Sequence[str]) -> int:
        """sent := desired, only where the row still carries the message Segment accepted."""
        return update_by_ids(self.tx, members, list_id, message_ids, _ACCEPTED)

    def mark_rejected(
        self,
        list_id: int,
        refusals: Sequence[tuple[str, int, str]],
        now: datetime,
        policy: RetryPolicy,
    ) -> int:
        """One more attempt per message Segment refused on its own (see `mark_refused`)."""
        return mark_refused(self.tx, members, list_id, refusals, now=now, policy=policy)

    def note_waiting(self, list_id: int, now: datetime, label: str) -> int:
        """Say why every row still due waits (an outage, a stop); no attempt is spent."""
        return label_due(self.tx, members, _due(list_id, now), label)

    def adopt_all(self, list_id: int) -> int:
        """Baseline: take the rows we never told Segment about as already there.

        Only those (never accepted, nothing posted): a pending change to a state Segment
        accepted from us (an unsubscribe waiting through an outage, say), or a message
        posted that Segment may hold, is ours to deliver; adopting it would leave Segment
        holding the old state.
        """
        c = members.c
        stmt = (
            update(members)
            .where(
                *carrying_message(list_id),
                c.sent_subscribed.is_(None),
                c.in_doubt.is_(False),
            )
            .values(**_ACCEPTED)
        )
        with self.tx.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def revive_dead(self, list_id: int | None) -> int:
        """`retry`: dead rows become due now, keeping their message ids."""
        c = members.c
        where = [c.dead.is_(True)] + ([c.list_id == list_id] if list_id is not None else [])
        stmt = (
            update(members).where(and_(*where)).values(dead=False, attempts=0, next_attempt_at=None)
        )
        with self.tx.begin() as conn:
            return int(conn.execute(stmt).rowcount)


def _due(list_id: int, now: datetime) -> list[ColumnElement[bool]]:
    """Rows of a list that delivery would send now: carrying a message, alive, not backing off."""
    c = members.c
    return [
        *carrying_message(list_id),
        c.dead.is_(False),
        or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
    ]
