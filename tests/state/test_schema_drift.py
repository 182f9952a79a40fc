"""The migrations and the table definitions describe one schema, on both backends, and a new
database made from the definitions is the one the migrations make."""

from __future__ import annotations

import re
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, text

from listrak_source.state import engine as db
from listrak_source.state.migrate import upgrade_to_head
from listrak_source.state.schema import metadata


def _migrated(url: str) -> Engine:
    """An engine on a database built by running every migration."""
    engine = db.make_engine(url)
    with db.migration_transaction(engine) as conn:
        upgrade_to_head(db.migrations_dir(), conn)
    return engine


def test_migrations_build_exactly_the_tables_the_code_defines(db_url: str) -> None:
    engine = _migrated(db_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    ignored = {"alembic_version"}
    drift = [d for d in diff if not (d[0] == "remove_table" and d[1].name in ignored)]
    assert drift == []


def test_a_new_database_is_made_as_the_migrations_make_it(db_url: str, other_db_url: str) -> None:
    """Columns in their order, with their types, nullability and defaults, keys, indexes
    with their conditions, and the revision: all alike, whichever way the database was
    made (a column a migration adds comes last, and so it must in the definitions)."""
    made = db.make_engine(db_url)
    db.upgrade(made)  # a database with no table yet: made from the definitions
    migrated = _migrated(other_db_url)
    catalogs = []
    for engine in (made, migrated):
        with engine.connect() as conn:
            catalogs.append(_catalog(conn))
        engine.dispose()
    assert catalogs[0] == catalogs[1]
    assert catalogs[0]["revision"] == [(db.SCHEMA_HEAD,)]


@pytest.mark.parametrize(
    "made_by_hand",
    ["CREATE TABLE members (list_id BIGINT)", "CREATE VIEW runs AS SELECT 1 AS list_id"],
)
def test_a_database_that_holds_anything_of_a_tables_name_is_not_made_over(
    db_url: str, made_by_hand: str
) -> None:
    """A table without the revision's record (a copy made by hand, say) is the migrations'
    to judge, and a view under a table's name fails the creation as it fails them: made
    over or stood in for, the database would be stamped current without that table."""
    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text(made_by_hand))
    name = made_by_hand.split()[2]
    with pytest.raises(Exception, match=name):
        db.upgrade(engine)
    assert db.current_revision(engine) is None
    engine.dispose()


def _catalog(conn: Connection) -> dict[str, Any]:
    """What the database says of its own schema, in an order that does not depend on how
    it was built."""
    found = _sqlite_catalog(conn) if conn.dialect.name == "sqlite" else _postgres_catalog(conn)
    found["revision"] = _rows(conn, "SELECT version_num FROM alembic_version")
    return found


def _sqlite_catalog(conn: Connection) -> dict[str, Any]:
    tables = [r[0] for r in _rows(conn, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    found: dict[str, Any] = {}
    for table in sorted(tables):
        # In order: (name, type, not null, default, position in the primary key, hidden).
        found[table] = [row[1:] for row in _rows(conn, f"PRAGMA table_xinfo('{table}')")]
        for index in _rows(conn, f"PRAGMA index_list('{table}')"):
            name = index[1]
            columns = [row[2] for row in _rows(conn, f"PRAGMA index_info('{name}')")]
            found[f"{table}.{name}"] = (index[2:], columns, _condition(conn, name))
    return found


def _condition(conn: Connection, index: str) -> str:
    """A partial index's condition as SQLite keeps it, spacing aside."""
    sql = _rows(conn, f"SELECT sql FROM sqlite_master WHERE name = '{index}'")[0][0]
    where = re.split(r"\bWHERE\b", sql or "", maxsplit=1, flags=re.IGNORECASE)[1:]
    return " ".join(where[0].split()) if where else ""


def _postgres_catalog(conn: Connection) -> dict[str, Any]:
    schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    columns = _rows(
        conn,
        "SELECT table_name, ordinal_position, column_name, data_type, character_maximum_length,"
        " is_nullable, column_default FROM information_schema.columns"
        " WHERE table_schema = current_schema()",
    )
    indexes = _rows(
        conn, "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
    )
    constraints = _rows(
        conn,
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE connamespace = current_schema()::regnamespace",
    )
    # In order, by rank: a dropped column leaves a gap in PostgreSQL's positions.
    ranked = [(row[0], *row[2:]) for row in sorted(columns, key=lambda r: (r[0], r[1]))]
    return {
        "columns": ranked,
        "indexes": sorted((name, sql.replace(f"{schema}.", "")) for name, sql in indexes),
        "constraints": sorted(constraints),
    }


def _rows(conn: Connection, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in conn.exec_driver_sql(sql)]
