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
    def writes_in_parallel(self) -> bool:
        """Whether two threads may write at once, each in its own transaction: on
        PostgreSQL's engine. SQLite takes one writer at a time, and a dry run's one
        connection is not for two threads."""
        return self._connection is None and self.engine.dialect.name == "postgresql"

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
    def read_then_write(self) -> Iterator[Connection]:
        """A connection for reads, then at most one write statement, together or not at all.

        On PostgreSQL each statement commits by itself there: the one write is atomic as
        any statement is, and it and each read are a round trip, where a transaction adds
        its BEGIN and COMMIT. Each statement reads what is committed when it starts, as
        in PostgreSQL's READ COMMITTED transactions. Elsewhere, and on a dry run's
        connection, it is a transaction as `begin` gives.
        """
        if not self.writes_in_parallel:  # SQLite, or a dry run's one connection
            with self.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads only."""
        if self._connection is not None:
            yield self._connection
            return
        with self.engine.connect() as conn:
            yield conn
