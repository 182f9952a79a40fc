"""The receiver's two per-request statements, as driver SQL for both dialects.

A request carries up to thousands of events. Through SQLAlchemy's compiler each row's
parameters are processed one by one, which measured at about two thirds of a commit; one
multi-row INSERT ... ON CONFLICT ... RETURNING per thousand rows, written once here, leaves
the time to the database. Everything else stays SQLAlchemy Core.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from .page_sql import is_postgres, placeholder
from .schema import audience_values

# Rows per statement: keeps every statement under SQLite's 32,766 bound parameters.
ROWS_PER_STATEMENT = 1000

_INBOX = ("message_id", "received_at", "list_id", "field_id", "email_key", "member", "event_us")
_VALUES = (
    "list_id",
    "field_id",
    "email_key",
    "email",
    "desired",
    "event_us",
    "event_id",
    "received_at",
)
# A newer rank replaces the value and gives it a clean retry slate; pending is whether
# Listrak is known to hold it already.
_SUPERSEDE = """
ON CONFLICT (list_id, field_id, email_key) DO UPDATE SET
  email = excluded.email, desired = excluded.desired, event_us = excluded.event_us,
  event_id = excluded.event_id, received_at = excluded.received_at,
  pending = (excluded.desired {distinct} audience_values.sent),
  attempts = 0, next_attempt_at = NULL, last_error = NULL, dead = FALSE, mismatches = 0
WHERE excluded.event_us > audience_values.event_us
   OR (excluded.event_us = audience_values.event_us
       AND excluded.event_id{collate} > audience_values.event_id{collate})
RETURNING list_id
"""


def _rows_sql(conn: Connection, width: int, count: int, tail: str = "") -> str:
    row = "(" + ", ".join([placeholder(conn)] * width) + tail + ")"
    return ", ".join([row] * count)


def _statements(rows: Sequence[tuple[Any, ...]]) -> Iterator[Sequence[tuple[Any, ...]]]:
    for start in range(0, len(rows), ROWS_PER_STATEMENT):
        yield rows[start : start + ROWS_PER_STATEMENT]


def _flat(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    return [value for row in rows for value in row]


def bind_time(conn: Connection) -> Callable[[datetime], Any]:
    """How this dialect stores an instant in a UTCDateTime column, worked out once a request.

    The column type's conversion to UTC, then the dialect's own (on SQLite, SQLAlchemy's
    fixed-width text), so comparisons made through SQLAlchemy elsewhere order them rightly.
    """
    column_type = audience_values.c.received_at.type.dialect_impl(conn.dialect)
    process = column_type.bind_processor(conn.dialect)
    return process if process is not None else (lambda value: value)


def insert_events(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> set[str]:
    """Insert inbox rows (in _INBOX order); returns the messageIds that were not there yet."""
    new: set[str] = set()
    for part in _statements(rows):
        sql = (
            f"INSERT INTO audience_inbox ({', '.join(_INBOX)})"
            f" VALUES {_rows_sql(conn, len(_INBOX), len(part))}"
            " ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
        )
        new.update(row[0] for row in conn.exec_driver_sql(sql, tuple(_flat(part))))
    return new


def upsert_values(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    """Insert or supersede values (in _VALUES order) where the rank is newer; returns how many."""
    postgres = is_postgres(conn)
    tail = _SUPERSEDE.format(
        distinct="IS DISTINCT FROM" if postgres else "IS NOT",
        # Byte order, as Python and SQLite compare: a locale's order could rank ties apart.
        collate=' COLLATE "C"' if postgres else "",
    )
    done = 0
    for part in _statements(rows):
        values = _rows_sql(conn, len(_VALUES), len(part), ", TRUE, 0, FALSE, FALSE")
        sql = (
            f"INSERT INTO audience_values ({', '.join(_VALUES)}, pending, attempts, dead, "
            f"mismatch) VALUES {values} {tail}"
        )
        done += len(conn.exec_driver_sql(sql, tuple(_flat(part))).all())
    return done
