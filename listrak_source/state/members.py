"""The scan side of the members table: a page's rows, the sweep, backfill's re-queue.

Each public method is one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Select,
    Text,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    or_,
    select,
    update,
)

from ..records import Change, PageDiff, PageKeys, Stored
from . import page_sql
from .rows import new_message, renew, requeue_subscribed
from .schema import members, rejects
from .transactions import Transactions


class Members:
    """What the scan writes: seen-marks, new desired values and their message ids, rejects."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx
        # Rows inserted since the planner last learnt the table's size, and that size.
        self._grown = 0
        self._known = 0

    def save_page(
        self,
        list_id: int,
        run_id: int,
        keys: PageKeys,
        differ: Callable[[Mapping[str, Stored]], PageDiff],
        detected_at: datetime,
        *,
        posting: bool = False,
    ) -> PageDiff:
        """Read the page's rows, diff them, and write changes, message ids and seen-marks,
        all in one transaction: together or not at all.

        `posting`: the changes go to Segment as soon as this commits, so their rows are in
        doubt from now on (see members.in_doubt), before anything is posted.
        """
        with self.tx.begin() as conn:
            page = differ(self._load(conn, list_id, run_id, keys))
            self._record(conn, list_id, run_id, page, detected_at, posting=posting)
        self._track_growth(sum(1 for c in page.changes if c.is_new))
        return page

    def _track_growth(self, inserted: int) -> None:
        """On PostgreSQL, re-analyze each time the table has doubled since the last time.

        A first sync fills an empty table whose statistics say it is empty, and the
        planner then reads a page's 5,000 keys and the delivered message ids by scanning
        the whole table: quadratic, 365 s instead of about 60 at 1 M contacts. Analyzing at
        5 k, 10 k, 20 k, ... rows costs a few dozen sampled reads; SQLite needs none (its
        planner uses the key indexes without statistics).
        """
        self._grown += inserted
        if self._grown < max(self._known, 5000) or self.tx.engine.dialect.name != "postgresql":
            return
        self._known += self._grown
        self._grown = 0
        self.refresh_statistics()

    @staticmethod
    def _load(conn: Connection, list_id: int, run_id: int, keys: PageKeys) -> dict[str, Stored]:
        """Subscribed contacts are marked seen as they are read; the sweep spares them."""
        rows = page_sql.mark_seen(conn, list_id, run_id, keys.subscribed)
        found = {row[0] for row in rows}
        # Keys not returned are new, or were seen earlier in this run (a duplicate).
        rest = [k for k in keys.subscribed if k not in found] + list(keys.unsubscribed)
        rows += page_sql.load_rows(conn, list_id, rest)
        return {
            key: Stored(
                *(bool(sub), uid, seen, None if sent is None else bool(sent)),
                *(sent_uid, bool(doubt), email),
            )
            for key, sub, uid, seen, sent, sent_uid, doubt, email in rows
        }

    def _record(
        self,
        conn: Connection,
        list_id: int,
        run_id: int,
        page: PageDiff,
        at: datetime,
        *,
        posting: bool,
    ) -> None:
        new = [c for c in page.changes if c.is_new]
        page_sql.insert_new(conn, list_id, run_id, new, at, posting=posting)
        changed = [c for c in page.changes if not c.is_new]
        self._apply_changes(conn, list_id, changed, at, posting=posting)
        if page.rejects:
            conn.execute(
                rejects.insert(),
                [
                    {
                        "list_id": list_id,
                        "run_id": run_id,
                        "email": r.email,
                        "reason": r.reason,
                        "created_at": at,
                    }
                    for r in page.rejects
                ],
            )

    @staticmethod
    def _apply_changes(
        conn: Connection,
        list_id: int,
        changes: Sequence[Change],
        detected_at: datetime,
        *,
        posting: bool,
    ) -> None:
        # A dead row that Listrak changes is sent again with the fresh values.
        if not changes:
            return
        stmt = (
            update(members)
            .where(members.c.list_id == list_id, members.c.email_key == bindparam("k"))
            .values(**_changed(detected_at))
        )
        params = [
            {
                "k": c.key,
                "e": c.email,
                "s": c.subscribed,
                "u": c.user_id,
                "m": c.message_id,
                "p": posting and c.message_id is not None,
            }
            for c in changes
        ]
        conn.execute(stmt, params)

    @staticmethod
    def _unseen(
        list_id: int,
        run_id: int,
        *,
        keys: Sequence[str] | None = None,
        missed_by: int | None = None,
    ) -> list[ColumnElement[bool]]:
        """Subscribed rows this run did not see; of these keys, or also missed by that run."""
        c = members.c
        where = [
            c.list_id == list_id,
            c.desired_subscribed.is_(True),
            or_(c.last_seen_run.is_(None), c.last_seen_run != run_id),
        ]
        if keys is not None:
            where.append(c.email_key.in_(list(keys)))
        if missed_by is not None:
            where.append(c.missed_run == missed_by)
        return where

    def refresh_statistics(self) -> None:
        """Let the query planner know how the table's rows are spread over lists.

        Without statistics SQLite answers "every subscribed row of list L" through the
        (list_id, email_key) index: a million random row look-ups, 3.7 s at 1 M rows,
        against 0.25 s for reading the table in order. ANALYZE (0.2 s at 1 M) tells it a
        list is most of the table; with many small lists it keeps using the index.
        Postgres analyzes on its own schedule; doing it here after a bulk load helps it too.
        A dry run skips it: inside its long transaction, ANALYZE's table lock would hold up
        every other list's ANALYZE until the dry run ends.
        """
        if not self.tx.keeps_writes:
            return
        with self.tx.begin() as conn:
            conn.exec_driver_sql("ANALYZE members")

    def count_unseen(
        self,
        list_id: int,
        run_id: int,
        *,
        keys: Sequence[str] | None = None,
        missed_by: int | None = None,
    ) -> tuple[int, int]:
        """(subscribed rows a complete scan did not see, all desired-subscribed rows).

        The total is only needed to judge a removal, so a scan that saw everyone skips it.
        """
        where = self._unseen(list_id, run_id, keys=keys, missed_by=missed_by)
        unseen = select(func.count()).where(*where)
        total = select(func.count()).where(
            members.c.list_id == list_id, members.c.desired_subscribed.is_(True)
        )
        with self.tx.begin() as conn:
            missing = int(conn.execute(unseen).scalar_one())
            return missing, int(conn.execute(total).scalar_one()) if missing else 0

    def unseen(self, list_id: int, run_id: int, limit: int) -> list[tuple[str, str]]:
        """(email key, email) of at most `limit` subscribers the scan did not see."""
        c = members.c
        query = (
            select(c.email_key, c.email)
            .where(*self._unseen(list_id, run_id))
            .order_by(c.email_key)
            .limit(limit)
        )
        with self.tx.read() as conn:
            return [(key, email) for key, email in conn.execute(query)]

    def mark_missed(self, list_id: int, run_id: int) -> int:
        """Note that this full scan missed every subscriber it did not see."""
        stmt = update(members).where(*self._unseen(list_id, run_id)).values(missed_run=run_id)
        with self.tx.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def remove_unseen(
        self,
        list_id: int,
        run_id: int,
        detected_at: datetime,
        new_id: Callable[[], str],
        *,
        keys: Sequence[str] | None = None,
        missed_by: int | None = None,
    ) -> int:
        """Unsubscribe the unseen rows Listrak confirmed gone: these keys, or missed twice."""
        where = self._unseen(list_id, run_id, keys=keys, missed_by=missed_by)
        query = select(members.c.email_key).where(*where)
        return self._renew(
            list_id, query, detected_at, new_id, desired_subscribed=False, **_REMOVAL_USER_ID
        )

    def requeue_all(self, list_id: int, detected_at: datetime, new_id: Callable[[], str]) -> int:
        """Backfill: every subscribed row pending again, each under a fresh message id."""
        with self.tx.begin() as conn:
            return requeue_subscribed(conn, list_id, detected_at, new_id)

    def _renew(
        self,
        list_id: int,
        query: Select[Any],
        detected_at: datetime,
        new_id: Callable[[], str],
        **values: object,
    ) -> int:
        """Give every row the query selects a new message (and these values), in one transaction."""
        with self.tx.begin() as conn:
            return renew(conn, list_id, query, detected_at, new_id, **values)


# A removal carries the userId Segment accepted with the `true` (as the diff's does).
_REMOVAL_USER_ID = {
    "desired_user_id": case(
        (members.c.sent_subscribed.is_(True), members.c.sent_user_id),
        else_=members.c.desired_user_id,
    )
}


def _changed(detected_at: datetime) -> dict[str, Any]:
    """A row's new desired values (bound as :e, :s, :u) with its new message (:m).

    Back to a subscription Segment last accepted, and no message of the row posted since
    (not in doubt), the pending message has nothing left to say, so it is dropped rather
    than replaced. A removal always goes out: an answer lost after Segment kept the
    pending true would otherwise leave the trait set. The diff decides the same; this
    repeats it in SQL against the row as it is when written. A row in doubt stays so;
    one whose message is about to be posted (:p) becomes so.
    """
    c = members.c
    values = new_message(
        detected_at,
        email=bindparam("e"),
        desired_subscribed=bindparam("s"),
        desired_user_id=bindparam("u"),
    )
    as_accepted = and_(
        bindparam("s", type_=Boolean).is_(True),
        c.sent_subscribed.is_(True),
        c.sent_user_id.is_not_distinct_from(bindparam("u", type_=Text)),
        c.in_doubt.is_(False),
    )
    values["in_doubt"] = or_(c.in_doubt, bindparam("p", type_=Boolean))
    values["message_id"] = case((as_accepted, null()), else_=bindparam("m"))
    when = literal(detected_at, c.detected_at.type)
    values["detected_at"] = case((as_accepted, null()), else_=when)
    return values
