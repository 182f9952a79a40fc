"""Row conditions and values that several parts of the state share, and key chunking."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    Table,
    Text,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from ..records import RetryPolicy
from .schema import members
from .transactions import Transactions

# Keeps every IN (...) list well under SQLite's 32,766 bound parameters.
CHUNK = 5000
# Between message ids bound as one text on PostgreSQL (see one_of_ids).
_ID_SEPARATOR = ","
T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most `size` items."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def carrying_message(list_id: int) -> list[ColumnElement[bool]]:
    """Rows of a list that carry a message id: pending and dead ones.

    This is the partial index's own condition, so a query that includes it reads only
    those rows, however large the list.
    """
    return [members.c.list_id == list_id, members.c.message_id.is_not(None)]


def clean_slate(**values: Any) -> dict[str, Any]:
    """Values that reset a row's retry state, plus any others given."""
    return {"attempts": 0, "next_attempt_at": None, "last_error": None, "dead": False, **values}


def new_message(detected_at: datetime, **values: Any) -> dict[str, Any]:
    """A new desired state always gets its own message id (bound as :m) and a clean slate."""
    return clean_slate(message_id=bindparam("m"), detected_at=detected_at, **values)


def subscribed_keys(list_id: int) -> Select[Any]:
    """The email keys of a list's desired-subscribed rows."""
    c = members.c
    return select(c.email_key).where(c.list_id == list_id, c.desired_subscribed.is_(True))


def renew(
    conn: Connection,
    list_id: int,
    query: Select[Any],
    detected_at: datetime,
    new_id: Callable[[], str],
    **values: object,
) -> int:
    """Give every row the query selects a new message (and these values), in the caller's
    transaction."""
    keys = list(conn.execute(query).scalars())
    return renew_keys(conn, list_id, keys, detected_at, new_id, **values)


def renew_keys(
    conn: Connection,
    list_id: int,
    keys: Sequence[str],
    detected_at: datetime,
    new_id: Callable[[], str],
    **values: object,
) -> int:
    """Give these rows of the list a new message (and these values), in the caller's
    transaction."""
    stmt = (
        update(members)
        .where(members.c.list_id == list_id, members.c.email_key == bindparam("k"))
        .values(**new_message(detected_at, **values))
    )
    for chunk in chunks(keys):
        conn.execute(stmt, [{"k": k, "m": new_id()} for k in chunk])
    return len(keys)


def one_of(conn: Connection, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """In an UPDATE's WHERE: `column` is one of the values bound as `name` (see `listed`).

    On PostgreSQL the rows are joined to one array parameter's elements (`FROM unnest`), so
    each value is looked up through the index. With `= ANY(array)` the planner walked the
    list's whole partial message-id index whenever its statistics said the index was
    nearly empty, as they do after a sync: every message that was accepted leaves a dead
    entry there until VACUUM, and marking a page's 50 messages sent read a million of them
    (0.5 s, against 0.8 ms joined; EXPLAIN ANALYZE at 1 M rows). Either way one statement:
    SQLAlchemy would render and PostgreSQL parse thousands of parameters at every call. On
    SQLite one JSON array read by json_each: as an expanding IN, SQLAlchemy rendered 5,000
    placeholders and their values anew at every call, while SQLite searches the index alike
    either way.
    """
    if conn.dialect.name == "postgresql":
        return _in_array(column, name, bindparam(name, type_=postgresql.ARRAY(column.type)))
    values = func.json_each(bindparam(name, type_=Text)).table_valued("value")
    return column.in_(select(values.c.value))


def one_of_ids(conn: Connection, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`one_of` for message ids, bound as `listed_ids` binds them.

    On PostgreSQL the ids are one text the server splits at its commas: psycopg writes an
    array parameter in Python, element by element (about 1.9 µs an id, most of the
    Segment answers' thread in a first sync), and joined they cost nothing. The planner
    still sees how many there are, as it does an array's.
    """
    if conn.dialect.name == "postgresql":
        given = func.string_to_array(bindparam(name, type_=Text), _ID_SEPARATOR)
        return _in_array(column, name, given)
    return one_of(conn, column, name)


def _in_array(
    column: ColumnElement[Any], name: str, array: ColumnElement[Any]
) -> ColumnElement[bool]:
    values = func.unnest(array).table_valued("value").render_derived(name=f"{name}_given")
    return column == values.c.value


def dialect_insert(conn: Connection) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT on SQLite and PostgreSQL alike."""
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def listed(conn: Connection, values: Sequence[str]) -> Any:
    """The values as `one_of` binds them: a list on PostgreSQL, JSON text on SQLite."""
    if conn.dialect.name == "postgresql":
        return list(values)
    return orjson.dumps(list(values)).decode()


def listed_ids(conn: Connection, ids: Sequence[str]) -> Any:
    """Message ids as `one_of_ids` binds them: on PostgreSQL one text, joined by commas.

    The ids are this worker's own UUIDs, which hold none; one that did would be split
    into ids no row carries, so it is refused here instead."""
    if conn.dialect.name != "postgresql":
        return listed(conn, ids)
    joined = _ID_SEPARATOR.join(ids)
    if joined.count(_ID_SEPARATOR) != len(ids) - 1:
        raise ValueError("a message id holds a comma")
    return joined


def requeue_subscribed(
    conn: Connection, list_id: int, detected_at: datetime, new_id: Callable[[], str]
) -> int:
    """Every subscriber pending again under a fresh message id, in the caller's transaction.

    What Segment holds is no longer what sent_* says (a new trait, or an emptied
    workspace), so every row that holds or owes a `true` is in doubt until Segment
    accepts its next message: a change back must still be sent, never dropped.
    """
    c = members.c
    owes = or_(c.desired_subscribed.is_(True), c.sent_subscribed.is_(True))
    conn.execute(update(members).where(c.list_id == list_id, owes).values(in_doubt=True))
    # A message already pending (a removal, say) is built anew too, now carrying the new
    # trait names: under its old id Segment would drop it as a copy of what it may have kept.
    pending = c.message_id.is_not(None)
    query = select(c.email_key).where(
        c.list_id == list_id, or_(c.desired_subscribed.is_(True), pending)
    )
    return renew(conn, list_id, query, detected_at, new_id)


def mark_refused(
    tx: Transactions,
    table: Table,
    list_id: int,
    refusals: Sequence[tuple[str, int, str]],
    *,
    now: datetime,
    policy: RetryPolicy,
) -> int:
    """One more attempt per (message id, attempts so far, error) Segment refused on its own:
    the row backs off, and is dead once it has used `max_attempts`. Rows now dead.

    Shared by the identify outbox and the activity ledger, whose tables carry the same
    delivery columns.
    """
    stmt = (
        update(table)
        .where(table.c.list_id == list_id, table.c.message_id == bindparam("m"))
        .values(
            attempts=bindparam("a"),
            next_attempt_at=bindparam("n"),
            last_error=bindparam("err"),
            dead=bindparam("d"),
        )
    )
    params = [_refusal(mid, made + 1, error, now, policy) for mid, made, error in refusals]
    if params:
        with tx.begin() as conn:
            conn.execute(stmt, params)
    return sum(1 for p in params if p["d"])


def _refusal(
    message_id: str, made: int, error: str, now: datetime, policy: RetryPolicy
) -> dict[str, object]:
    return {
        "m": message_id,
        "a": made,
        "n": now + policy.delay(made),
        "err": f"rejected: {error}"[:1000],
        "d": made >= policy.max_attempts,
    }


def label_due(
    tx: Transactions, table: Table, due: Sequence[ColumnElement[bool]], label: str
) -> int:
    """Say on every row still due why it waits (an outage, a stop); no attempt is spent."""
    stmt = update(table).where(*due).values(last_error=label[:1000])
    with tx.begin() as conn:
        return int(conn.execute(stmt).rowcount)


def update_by_ids(
    tx: Transactions,
    table: Table,
    list_id: int,
    message_ids: Sequence[str],
    values: Mapping[str, Any],
    *where: ColumnElement[bool],
) -> int:
    """Set `values` on the list's rows of the table that carry these message ids (and meet
    `where`), a chunk at a time, in one transaction; rows changed. The ids are bound as one
    text on PostgreSQL (see `one_of_ids`)."""
    done = 0
    with tx.begin() as conn:
        c = table.c
        match = c.list_id == list_id, one_of_ids(conn, c.message_id, "ids"), *where
        stmt = update(table).where(*match).values(values)
        for chunk in chunks(message_ids):
            done += conn.execute(stmt, {"ids": listed_ids(conn, chunk)}).rowcount
    return done
