"""The activity ledger's per-page writes, as driver SQL.

A first pass over a broadcast writes a row and an event for every contact who acted, page
after page. Through SQLAlchemy's compiler each of them ran its bind processors and built
its parameters one at a time, which measured more than the database's own work (as for the
subscriber pages, see page_sql). The statements are the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..tracking.records import Seen
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
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * count)


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
