"""The statements a piece of code sends to the database, as the driver receives them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def recorded(engine: Engine, starting: str) -> Iterator[list[tuple[str, Any]]]:
    """(SQL, parameters) of each statement beginning with `starting` run in the block."""
    found: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
        if sql.startswith(starting):
            found.append((sql, params))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", record)
