"""A first migration cut short leaves no half-made schema on SQLite: the next start makes it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from listrak_source.state.engine import (
    make_engine,
    migration_transaction,
    migrations_dir,
    upgrade,
)
from listrak_source.state.migrate import upgrade_to


def test_a_migration_cut_short_leaves_nothing_half_made(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    # The transaction `upgrade` opens, cut short after the first migrations ran in it.
    with pytest.raises(RuntimeError), migration_transaction(engine) as conn:
        upgrade_to(migrations_dir(), conn, "0004_locks")
        raise RuntimeError("killed")  # as a kill -9 before the commit
    assert inspect(engine).get_table_names() == []
    upgrade(engine)
    assert "members" in inspect(engine).get_table_names()
    engine.dispose()
