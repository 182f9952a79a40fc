"""A migrated, empty SQLite state file, made once per test process and copied for each use:
property tests make two fresh databases an example, and migrating each costs more than the
example itself."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import Engine

from listrak_source.state import make_engine, upgrade


@functools.cache
def _template() -> Path:
    path = Path(tempfile.mkdtemp(prefix="listrak-source-template-")) / "state.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        # Everything into the file itself: the copy takes the file alone.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def fresh_sqlite(path: Path) -> Engine:
    """An engine on a new state file at `path`, migrated to the head revision."""
    shutil.copyfile(_template(), path)
    return make_engine(f"sqlite:///{path}")
