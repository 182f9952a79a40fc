"""The activity ledger's per-page reads and writes, as driver SQL.

A first pass over a broadcast writes a row and an event for every contact who acted, page
after page, after looking up what the ledger holds of them. Through SQLAlchemy's compiler
each row ran its bind processors and built its parameters one at a time, and each lookup
rendered thousands of IN parameters anew, which measured more than the database's own work
(as for the subscriber pages, see page_sql). Lookups bind one array on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..tracking.records import Seen
from .page_sql import column_in, fetch, is_postgres, placeholder
from .schema import activity_events

_EVENT_COLUMNS = (
    "message_id",
    "list_id",
    "event",
    "fact",
    "email_key",
    "email",
    "occurred_at",
    "properties",
    "detected_at",
    "sent",
    "sent_at",
    "attempts",
    "dead",
)
_ROW_COLUMNS = ("send_date", "opened", "bounced", "abused", "order_total", "click_count")


def _marks(conn: Connection, count: int) -> str:
    return ", ".join([placeholder(conn)] * count)


def stamps(conn: Connection) -> Callable[[datetime | None], Any]:
    """A UTC time as the ledger's columns store it on this database (as SQLAlchemy would)."""
    process = activity_events.c.occurred_at.type.bind_processor(conn.dialect)
    return process if process is not None else (lambda value: value)


def insert_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """New events, their columns named as in `_EVENT_COLUMNS`; times already stamped."""
    sql = (
        f"INSERT INTO activity_events ({', '.join(_EVENT_COLUMNS)})"
        f" VALUES ({_marks(conn, len(_EVENT_COLUMNS))}) ON CONFLICT DO NOTHING"
    )
    conn.exec_driver_sql(sql, [tuple(row[c] for c in _EVENT_COLUMNS) for row in rows])


def upsert_rows(conn: Connection, list_id: int, message_id: int, rows: Mapping[str, Seen]) -> None:
    """A page's changed rows as now seen, stored over what was seen before."""
    columns = ("list_id", "message_id", "email_key", *_ROW_COLUMNS)
    sql = (
        f"INSERT INTO activity_rows ({', '.join(columns)})"
        f" VALUES ({_marks(conn, len(columns))})"
        " ON CONFLICT (list_id, message_id, email_key) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _ROW_COLUMNS)
    )
    conn.exec_driver_sql(sql, [(list_id, message_id, key, *seen) for key, seen in rows.items()])


def seen_rows(
    conn: Connection, list_id: int, message_id: int, keys: Sequence[str]
) -> dict[str, Seen]:
    """The rows as last seen, for these addresses of one message."""
    select = f"email_key, {', '.join(_ROW_COLUMNS)} FROM activity_rows"
    where = f"list_id = {placeholder(conn)} AND message_id = {placeholder(conn)}"
    rows = _matching(conn, select, (where, (list_id, message_id)), keys)
    return {
        key: Seen(send, bool(o), bool(b), bool(a), float(total), int(clicks))
        for key, send, o, b, a, total, clicks in rows
    }


def known_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of these event ids the ledger holds, under any list."""
    rows = _matching(conn, "message_id FROM activity_events", ("", ()), ids, by="message_id")
    return {row[0] for row in rows}


def column_by_key(
    conn: Connection, table: str, column: str, list_id: int, keys: Sequence[str]
) -> list[tuple[str, Any]]:
    """(email_key, column) of the table's rows of the list, for these addresses."""
    where = f"list_id = {placeholder(conn)}", (list_id,)
    rows = _matching(conn, f"email_key, {column} FROM {table}", where, keys)
    return [(key, value) for key, value in rows]


def _matching(
    conn: Connection,
    select: str,
    where: tuple[str, Sequence[Any]],
    values: Sequence[Any],
    *,
    by: str = "email_key",
) -> list[Any]:
    """`select` ("columns FROM table") of the rows that meet `where` (a condition and its
    parameters) and whose `by` is one of the values.

    On PostgreSQL each value is looked up through the index, in a LATERAL subquery that
    OFFSET 0 keeps the planner from flattening: as `= ANY(array)`, or as a plain join while
    the ledger's statistics were still those of an empty table, it read every row of the
    message and filtered them (0.6 s a page at 1 M rows, against 3 ms). SQLite: IN lists.
    """
    condition, params = where
    condition = f"{condition} AND " if condition else ""
    if is_postgres(conn):
        sql = (
            f"SELECT x.* FROM unnest(%s::text[]) AS v(value) CROSS JOIN LATERAL"
            f" (SELECT {select} WHERE {condition}{by} = v.value OFFSET 0) AS x"
        )
        return fetch(conn, sql, (list(values), *params))
    out: list[Any] = []
    for test, batch in column_in(conn, by, values):
        out.extend(fetch(conn, f"SELECT {select} WHERE {condition}{test}", (*params, *batch)))
    return out
