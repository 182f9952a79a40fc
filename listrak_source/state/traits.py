"""Each list's trait as its messages carry it, and the old ones a rename still removes.

The configured trait is recorded by a list's first run; a later config naming another is
a rename, which only `rename-trait` carries out: every subscriber is sent the new trait
and, until all of them are delivered, every message also removes the old one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from sqlalchemy import Connection, exists, insert, select, update

from .rows import carrying_message, requeue_subscribed
from .schema import list_state
from .transactions import Transactions

# Trait names are letters, digits, "_" and "-", so a comma can join several.
_SEP = ","
# list id -> (the trait its messages carry, the old traits they also remove)
Claims = Mapping[int, tuple[str | None, tuple[str, ...]]]
# Looks at every list's claims before a list takes a trait, and raises to refuse it.
ClaimCheck = Callable[[Claims], None]


def _no_check(claims: Claims) -> None:
    return None


class Traits:
    """The recorded trait of each list; every method is one transaction."""

    def __init__(self, tx: Transactions) -> None:
        self.tx = tx

    def recorded(self, list_id: int) -> tuple[str | None, tuple[str, ...]]:
        """(the trait the list's messages carry, the old traits they also remove)."""
        with self.tx.read() as conn:
            return _recorded(conn, list_id)

    def claims(self) -> Claims:
        """Every list's recorded trait and the old ones it still removes."""
        with self.tx.read() as conn:
            return _claims(conn)

    def adopt(self, list_id: int, trait: str, check: ClaimCheck = _no_check) -> None:
        """Record the configured trait of a list that has none yet (first run, or upgrade),
        unless `check` refuses it given every list's claims, read in the same transaction."""
        c = list_state.c
        with self.tx.begin() as conn:
            check(_claims(conn, lock=True))
            if conn.execute(select(c.list_id).where(c.list_id == list_id)).first() is None:
                conn.execute(insert(list_state).values(list_id=list_id, trait=trait))
            else:
                stmt = update(list_state).where(c.list_id == list_id, c.trait.is_(None))
                conn.execute(stmt.values(trait=trait))

    def rename(
        self,
        list_id: int,
        trait: str,
        detected_at: datetime,
        new_id: Callable[[], str],
        check: ClaimCheck = _no_check,
    ) -> int:
        """Make `trait` the list's, queue it for every subscriber, and retire the old one;
        unless `check` refuses it given every list's claims, read in the same transaction."""
        with self.tx.begin() as conn:
            check(_claims(conn, lock=True))
            old, retired = _recorded(conn, list_id)
            gone = [t for t in (*retired, old) if t is not None and t != trait]
            values = {"trait": trait, "retired_trait": _SEP.join(gone) or None}
            conn.execute(update(list_state).where(list_state.c.list_id == list_id).values(values))
            return requeue_subscribed(conn, list_id, detected_at, new_id)

    def retire_done(self, list_id: int) -> None:
        """Forget the old traits once no row of the list has a message left to deliver.

        Most lists have none, and are left alone: PostgreSQL looks for a row carrying a
        message before it reads list_state, and after a first sync whose sent marks left a
        million dead row versions it read the whole table to find none (90 ms at 1 M).
        """
        busy = exists().where(*carrying_message(list_id))
        stmt = (
            update(list_state)
            .where(list_state.c.list_id == list_id, list_state.c.retired_trait.is_not(None), ~busy)
            .values(retired_trait=None)
        )
        with self.tx.begin() as conn:
            if _recorded(conn, list_id)[1]:
                conn.execute(stmt)


def _claims(conn: Connection, *, lock: bool = False) -> Claims:
    """Every list's claims; with `lock`, on PostgreSQL, their rows are held until the
    transaction ends, so of two lists taking traits at once the second waits, then reads
    what the first committed."""
    c = list_state.c
    query = select(c.list_id, c.trait, c.retired_trait)
    rows = conn.execute(query.with_for_update() if lock else query)
    return {row.list_id: (row.trait, _names(row.retired_trait)) for row in rows}


def _names(joined: str | None) -> tuple[str, ...]:
    return tuple(joined.split(_SEP)) if joined else ()


def _recorded(conn: Connection, list_id: int) -> tuple[str | None, tuple[str, ...]]:
    c = list_state.c
    row = conn.execute(select(c.trait, c.retired_trait).where(c.list_id == list_id)).first()
    if row is None:
        return None, ()
    return row.trait, _names(row.retired_trait)
