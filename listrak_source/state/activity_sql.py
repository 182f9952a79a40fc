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
from .page_sql import column_in, fetch
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


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _marks(conn: Connection, count: int) -> str:
    return ", ".join([_mark(conn)] * count)


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
    sql = (
        f"SELECT email_key, {', '.join(_ROW_COLUMNS)} FROM activity_rows"
        f" WHERE list_id = {_mark(conn)} AND message_id = {_mark(conn)}"
    )
    out: dict[str, Seen] = {}
    for condition, params in column_in(conn, "email_key", keys):
        for key, send, o, b, a, total, clicks in fetch(
            conn, f"{sql} AND {condition}", (list_id, message_id, *params)
        ):
            out[key] = Seen(send, bool(o), bool(b), bool(a), float(total), int(clicks))
    return out


def known_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
    """Which of these event ids the ledger holds, under any list."""
    found: set[str] = set()
    for condition, params in column_in(conn, "message_id", ids):
        sql = f"SELECT message_id FROM activity_events WHERE {condition}"
        found.update(row[0] for row in fetch(conn, sql, params))
    return found


def column_by_key(
    conn: Connection, table: str, column: str, list_id: int, keys: Sequence[str]
) -> list[tuple[str, Any]]:
    """(email_key, column) of the table's rows of the list, for these addresses."""
    out: list[tuple[str, Any]] = []
    for condition, params in column_in(conn, "email_key", keys):
        sql = (
            f"SELECT email_key, {column} FROM {table} WHERE list_id = {_mark(conn)} AND {condition}"
        )
        out.extend((key, value) for key, value in fetch(conn, sql, (list_id, *params)))
    return out
