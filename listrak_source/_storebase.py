"""The state table's plumbing: transactions (or a dry run's one connection) and chunking."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, bindparam

from ._schema import members

# Keeps every IN (...) list well under SQLite's 32,766 bound parameters.
CHUNK = 5000


def chunks(items: Sequence[str], size: int = CHUNK) -> Iterator[Sequence[str]]:
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


class StoreBase:
    """Holds the engine; a dry run hands in one connection whose transaction is rolled back."""

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
