"""A private copy of an SQLite database, for a dry run that must write without locking."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import Engine

from .engine import make_engine


@contextmanager
def sqlite_copy(engine: Engine) -> Iterator[Engine]:
    """An engine on a copy of the database, deleted when the block ends.

    sqlite3's backup API reads the source in one read transaction: under WAL a writer
    never waits for it, and the copy is a consistent snapshot.
    """
    with tempfile.TemporaryDirectory(prefix="listrak-source-dry-run-") as folder:
        path = Path(folder) / "copy.db"
        source = engine.raw_connection()
        try:
            with closing(sqlite3.connect(path)) as target:
                source.driver_connection.backup(target)  # type: ignore[union-attr]
        finally:
            source.close()
        copy = make_engine(f"sqlite:///{path}")
        try:
            yield copy
        finally:
            copy.dispose()
