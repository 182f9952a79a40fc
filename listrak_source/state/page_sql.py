"""The scan's per-page statements on members, as driver SQL.

A page is 5,000 rows. Through SQLAlchemy's compiler an expanding IN of 5,000 keys is
re-rendered on every call, and an insert runs five bind processors per row: measured,
that cost more than SQLite's own work. These three statements are the hot path, so
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
    "last_seen_run",
    "in_doubt",
)
# (email_key, desired_subscribed, desired_user_id, last_seen_run, sent_subscribed,
# sent_user_id, in_doubt, email) per stored row.
Row = tuple[str, Any, str | None, int | None, Any, str | None, Any, str]
_STORED = "desired_subscribed, desired_user_id, sent_subscribed, sent_user_id, in_doubt, email"


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


def load_rows(conn: Connection, list_id: int, keys: Sequence[str]) -> list[Row]:
    """The stored rows of these contacts (see Row)."""
    mark = _mark(conn)
    out: list[Row] = []
    for condition, params in _key_batches(conn, keys):
        sql = (
            f"SELECT email_key, last_seen_run, {_STORED}"
            f" FROM members WHERE list_id = {mark} AND {condition}"
        )
        rows = conn.exec_driver_sql(sql, (list_id, *params)).all()
        out.extend((key, sub, uid, seen, *rest) for key, seen, sub, uid, *rest in rows)
    return out


def mark_seen(conn: Connection, list_id: int, run_id: int, keys: Sequence[str]) -> list[Row]:
    """Mark these contacts seen by this run and return their rows as they were before.

    One UPDATE ... RETURNING instead of a SELECT and an UPDATE: measured on a 1 M list,
    37 ms a page instead of 63. A row this run marked already (the same contact twice in
    one scan) is neither touched nor returned; its last_seen_run is the returned run_id.
    """
    mark = _mark(conn)
    differs = "IS DISTINCT FROM" if _is_postgres(conn) else "IS NOT"
    out: list[Row] = []
    for condition, params in _key_batches(conn, keys):
        sql = (
            f"UPDATE members SET last_seen_run = {mark}"
            f" WHERE list_id = {mark} AND {condition} AND last_seen_run {differs} {mark}"
            f" RETURNING email_key, {_STORED}"
        )
        rows = conn.exec_driver_sql(sql, (run_id, list_id, *params, run_id)).all()
        out.extend((key, sub, uid, None, *rest) for key, sub, uid, *rest in rows)
    return out


def insert_new(
    conn: Connection,
    list_id: int,
    run_id: int,
    changes: Sequence[Change],
    detected_at: datetime,
    *,
    posting: bool,
) -> None:
    """Contacts never stored before, each pending under its message id and seen by this run;
    `posting`: their messages are about to be posted, so Segment may hold them from now."""
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
            (
                *(list_id, c.key, c.email, c.subscribed, c.user_id, c.message_id),
                *(when, 0, False, run_id, posting),
            )
            for c in changes
        ],
    )


def _bind(conn: Connection, value: datetime) -> Any:
    process: Callable[[Any], Any] | None = members.c.detected_at.type.bind_processor(conn.dialect)
    return process(value) if process is not None else value
