"""How the state transacts: short transactions on the engine, or one rolled-back connection.

A real run gives each call its own transaction; a dry run hands in one connection whose
transaction is rolled back at the end, so the same code runs and nothing is kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


class Transactions:
    """Short transactions on the engine, or the dry run's shared connection (never committed)."""

    def __init__(self, engine: Engine, connection: Connection | None = None) -> None:
        self.engine = engine
        self._connection = connection

    @property
    def keeps_writes(self) -> bool:
        """False for a dry run's connection, whose transaction is rolled back."""
        return self._connection is None

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction that commits when the block ends without an error."""
        if self._connection is not None:
            yield self._connection
            return
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads only."""
        if self._connection is not None:
            yield self._connection
            return
        with self.engine.connect() as conn:
            yield conn
