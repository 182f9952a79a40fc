"""Writes and reads of the members table; each public method is one transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, bindparam, func, or_, select, update

from ._schema import members, rejects
from .diff import Change, PageDiff, Stored
from .messages import Pending

# Keeps every IN (...) list well under SQLite's 32,766 bound parameters.
_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long a failed row waits, and after how many attempts it is dead."""

    max_attempts: int
    base: timedelta
    cap: timedelta

    def delay(self, attempts: int) -> timedelta:
        """Exponential in the attempts already made, capped."""
        delay: timedelta = self.base * (2 ** max(attempts - 1, 0))
        return min(delay, self.cap)


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Store:
    """The state table; a dry run hands in one connection whose transaction is rolled back."""

    def __init__(self, engine: Engine, *, connection: Connection | None = None) -> None:
        self.engine = engine
        self._connection = connection

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, or the dry run's shared connection (never committed)."""
        if self._connection is not None:
            yield self._connection
            return
        with self.engine.begin() as conn:
            yield conn

    def load(self, list_id: int, keys: Sequence[str]) -> dict[str, Stored]:
        """The stored rows for these contacts, keyed by email key."""
        query = select(
            members.c.email_key,
            members.c.desired_subscribed,
            members.c.desired_user_id,
            members.c.last_seen_run,
        ).where(
            members.c.list_id == list_id, members.c.email_key.in_(bindparam("keys", expanding=True))
        )
        out: dict[str, Stored] = {}
        with self.begin() as conn:
            for chunk in _chunks(keys):
                rows = conn.execute(query, {"keys": list(chunk)}).all()
                for key, sub, uid, seen in rows:
                    out[key] = Stored(bool(sub), uid, seen)
        return out

    def record_page(
        self,
        list_id: int,
        run_id: int,
        page: PageDiff,
        detected_at: datetime,
        *,
        stamp: bool = True,
    ) -> None:
        """Changes, their message ids and the scan's seen-marks land together or not at all."""
        with self.begin() as conn:
            self._insert_new(
                conn, list_id, run_id, [c for c in page.changes if c.is_new], detected_at
            )
            self._apply_changes(
                conn, list_id, [c for c in page.changes if not c.is_new], detected_at
            )
            if stamp:
                self._stamp_seen(conn, list_id, run_id, page.seen)
            if page.rejects:
                conn.execute(
                    rejects.insert(),
                    [
                        {
                            "list_id": list_id,
                            "run_id": run_id,
                            "email": r.email,
                            "reason": r.reason,
                            "created_at": detected_at,
                        }
                        for r in page.rejects
                    ],
                )

    @staticmethod
    def _insert_new(
        conn: Connection, list_id: int, run_id: int, changes: list[Change], detected_at: datetime
    ) -> None:
        if not changes:
            return
        rows = [
            {
                "list_id": list_id,
                "email_key": c.key,
                "email": c.email,
                "desired_subscribed": c.subscribed,
                "desired_user_id": c.user_id,
                "sent_subscribed": None,
                "sent_user_id": None,
                "message_id": c.message_id,
                "detected_at": detected_at,
                "attempts": 0,
                "next_attempt_at": None,
                "last_error": None,
                "dead": False,
                "last_seen_run": run_id,
            }
            for c in changes
        ]
        conn.execute(members.insert(), rows)

    @staticmethod
    def _apply_changes(
        conn: Connection, list_id: int, changes: Sequence[Change], detected_at: datetime
    ) -> None:
        # A new desired state always gets a new message id and a clean retry slate:
        # a dead row that Listrak changes is sent again with the fresh values.
        if not changes:
            return
        stmt = (
            update(members)
            .where(members.c.list_id == list_id, members.c.email_key == bindparam("k"))
            .values(
                email=bindparam("e"),
                desired_subscribed=bindparam("s"),
                desired_user_id=bindparam("u"),
                message_id=bindparam("m"),
                detected_at=detected_at,
                attempts=0,
                next_attempt_at=None,
                last_error=None,
                dead=False,
            )
        )
        params = [
            {"k": c.key, "e": c.email, "s": c.subscribed, "u": c.user_id, "m": c.message_id}
            for c in changes
        ]
        conn.execute(stmt, params)

    @staticmethod
    def _stamp_seen(conn: Connection, list_id: int, run_id: int, keys: Sequence[str]) -> None:
        stmt = (
            update(members)
            .where(
                members.c.list_id == list_id,
                members.c.email_key.in_(bindparam("keys", expanding=True)),
            )
            .values(last_seen_run=run_id)
        )
        for chunk in _chunks(keys):
            conn.execute(stmt, {"keys": list(chunk)})

    def _unseen_filter(self, list_id: int, run_id: int) -> list[object]:
        return [
            members.c.list_id == list_id,
            members.c.desired_subscribed.is_(True),
            or_(members.c.last_seen_run.is_(None), members.c.last_seen_run != run_id),
        ]

    def count_unseen(self, list_id: int, run_id: int) -> tuple[int, int]:
        """(subscribed rows a complete scan did not see, all desired-subscribed rows)."""
        unseen = select(func.count()).where(*self._unseen_filter(list_id, run_id))  # type: ignore[arg-type]
        total = select(func.count()).where(
            members.c.list_id == list_id, members.c.desired_subscribed.is_(True)
        )
        with self.begin() as conn:
            return int(conn.execute(unseen).scalar_one()), int(conn.execute(total).scalar_one())

    def sweep(
        self, list_id: int, run_id: int, detected_at: datetime, new_id: Callable[[], str]
    ) -> int:
        """Mark every subscribed row the finished scan did not see as unsubscribed."""
        query = select(members.c.email_key).where(*self._unseen_filter(list_id, run_id))  # type: ignore[arg-type]
        with self.begin() as conn:
            keys = list(conn.execute(query).scalars())
            stmt = (
                update(members)
                .where(members.c.list_id == list_id, members.c.email_key == bindparam("k"))
                .values(
                    desired_subscribed=False,
                    message_id=bindparam("m"),
                    detected_at=detected_at,
                    attempts=0,
                    next_attempt_at=None,
                    last_error=None,
                    dead=False,
                )
            )
            for chunk in _chunks(keys):
                conn.execute(stmt, [{"k": k, "m": new_id()} for k in chunk])
        return len(keys)

    def pending(
        self, list_id: int, now: datetime, *, after: str = "", limit: int = _CHUNK
    ) -> list[tuple[Pending, int]]:
        """Rows due for delivery, in key order from `after`, with their attempt counts."""
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
            .where(
                c.list_id == list_id,
                c.message_id.is_not(None),
                c.dead.is_(False),
                c.email_key > after,
                or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
            )
            .order_by(c.email_key)
            .limit(limit)
        )
        with self.begin() as conn:
            return [
                (Pending(list_id, key, email, bool(sub), uid, mid, detected), attempts)
                for key, email, sub, uid, mid, detected, attempts in conn.execute(query)
            ]

    def mark_sent(self, list_id: int, message_ids: Sequence[str]) -> int:
        """sent := desired, only where the row still carries the message Segment accepted."""
        stmt = (
            update(members)
            .where(
                members.c.list_id == list_id,
                members.c.message_id.in_(bindparam("ids", expanding=True)),
            )
            .values(
                sent_subscribed=members.c.desired_subscribed,
                sent_user_id=members.c.desired_user_id,
                message_id=None,
                detected_at=None,
                attempts=0,
                next_attempt_at=None,
                last_error=None,
                dead=False,
            )
        )
        done = 0
        with self.begin() as conn:
            for chunk in _chunks(message_ids):
                done += conn.execute(stmt, {"ids": list(chunk)}).rowcount
        return done

    def mark_failed(
        self,
        list_id: int,
        failures: Sequence[tuple[str, int, str]],
        now: datetime,
        policy: RetryPolicy,
    ) -> int:
        """Count one more attempt per (message id, attempts so far, error); return rows now dead."""
        stmt = (
            update(members)
            .where(members.c.list_id == list_id, members.c.message_id == bindparam("m"))
            .values(
                attempts=bindparam("a"),
                next_attempt_at=bindparam("n"),
                last_error=bindparam("err"),
                dead=bindparam("d"),
            )
        )
        params = []
        for message_id, attempts, error in failures:
            made = attempts + 1
            params.append(
                {
                    "m": message_id,
                    "a": made,
                    "n": now + policy.delay(made),
                    "err": error[:1000],
                    "d": made >= policy.max_attempts,
                }
            )
        if params:
            with self.begin() as conn:
                conn.execute(stmt, params)
        return sum(1 for p in params if p["d"])

    def postpone(self, list_id: int, message_ids: Sequence[str], until: datetime) -> None:
        """A rate-limited row waits without spending an attempt."""
        stmt = (
            update(members)
            .where(
                members.c.list_id == list_id,
                members.c.message_id.in_(bindparam("ids", expanding=True)),
            )
            .values(next_attempt_at=until, last_error="rate limited by Segment")
        )
        with self.begin() as conn:
            for chunk in _chunks(message_ids):
                conn.execute(stmt, {"ids": list(chunk)})

    def requeue_all(self, list_id: int, detected_at: datetime, new_id: Callable[[], str]) -> int:
        """Backfill: every subscribed row pending again, each under a fresh message id."""
        c = members.c
        with self.begin() as conn:
            keys = list(
                conn.execute(
                    select(c.email_key).where(c.list_id == list_id, c.desired_subscribed.is_(True))
                ).scalars()
            )
            stmt = (
                update(members)
                .where(c.list_id == list_id, c.email_key == bindparam("k"))
                .values(
                    message_id=bindparam("m"),
                    detected_at=detected_at,
                    attempts=0,
                    next_attempt_at=None,
                    last_error=None,
                    dead=False,
                )
            )
            for chunk in _chunks(keys):
                conn.execute(stmt, [{"k": k, "m": new_id()} for k in chunk])
        return len(keys)

    def adopt_all(self, list_id: int) -> int:
        """Baseline: take what Listrak holds as already in Segment; nothing will be sent."""
        c = members.c
        stmt = (
            update(members)
            .where(c.list_id == list_id, c.message_id.is_not(None))
            .values(
                sent_subscribed=c.desired_subscribed,
                sent_user_id=c.desired_user_id,
                message_id=None,
                detected_at=None,
                attempts=0,
                next_attempt_at=None,
                last_error=None,
                dead=False,
            )
        )
        with self.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def revive_dead(self, list_id: int | None) -> int:
        """`retry`: dead rows become due now, keeping their message ids."""
        c = members.c
        where = [c.dead.is_(True)] + ([c.list_id == list_id] if list_id is not None else [])
        stmt = (
            update(members).where(and_(*where)).values(dead=False, attempts=0, next_attempt_at=None)
        )
        with self.begin() as conn:
            return int(conn.execute(stmt).rowcount)
