"""The scan's per-page statements on members, as driver SQL.

A page is 5,000 rows. Through SQLAlchemy's compiler an expanding IN of 5,000 keys is
re-rendered on every call, and an insert runs five bind processors per row: measured,
that cost more than SQLite's own work. These statements are the hot path, so
they are written once here for both dialects; everything else stays SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from ..records import Change
from .rows import chunks
from .schema import members

_INSERT_COLUMNS = (
    "list_id",
    "email_key",
    "email",
    "desired_subscribed",
    "desired_user_id",
    "message_id",
    "detected_at",
    "attempts",
    "dead",
)
# (email_key, desired_subscribed, desired_user_id, sent_subscribed, sent_user_id) per row.
Row = tuple[str, Any, str | None, Any, str | None]


def _is_postgres(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _mark(conn: Connection) -> str:
    return "?" if conn.dialect.paramstyle == "qmark" else "%s"


def _key_batches(conn: Connection, keys: Sequence[str]) -> Iterator[tuple[str, list[Any]]]:
    """(SQL condition on email_key, its parameters): one array on Postgres, IN lists on SQLite."""
    if _is_postgres(conn):
        yield "email_key = ANY(%s)", [list(keys)]
        return
    for chunk in chunks(keys):
        yield f"email_key IN ({','.join('?' * len(chunk))})", list(chunk)


def _fetch(conn: Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The driver's own tuples: a SQLAlchemy Row per contact cost a microsecond each."""
    result = conn.exec_driver_sql(sql, tuple(params))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


def load_rows(conn: Connection, list_id: int, keys: Sequence[str]) -> list[Row]:
    """The stored rows of these contacts (see Row): a read, which writes nothing.

    A page that matches what is stored is then no write at all; the scan keeps the keys
    it has seen in memory (state/seen.py) rather than marking each row.
    """
    mark = _mark(conn)
    out: list[Row] = []
    for condition, params in _key_batches(conn, keys):
        sql = (
            "SELECT email_key, desired_subscribed, desired_user_id, sent_subscribed, sent_user_id"
            f" FROM members WHERE list_id = {mark} AND {condition}"
        )
        out.extend(_fetch(conn, sql, (list_id, *params)))
    return out


def insert_new(
    conn: Connection, list_id: int, changes: Sequence[Change], detected_at: datetime
) -> None:
    """Contacts never stored before, each pending under its message id."""
    if not changes:
        return
    sql = (
        f"INSERT INTO members ({', '.join(_INSERT_COLUMNS)})"
        f" VALUES ({', '.join([_mark(conn)] * len(_INSERT_COLUMNS))})"
    )
    # One timestamp per page: convert it as SQLAlchemy would, once, not per row.
    when = _bind(conn, detected_at)
    conn.exec_driver_sql(
        sql,
        [
            (list_id, c.key, c.email, c.subscribed, c.user_id, c.message_id, when, 0, False)
            for c in changes
        ],
    )


def _bind(conn: Connection, value: datetime) -> Any:
    process: Callable[[Any], Any] | None = members.c.detected_at.type.bind_processor(conn.dialect)
    return process(value) if process is not None else value
