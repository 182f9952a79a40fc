"""The migrations and the table definitions describe one schema, on both backends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from listrak_source.state.schema import metadata


def test_migrations_build_exactly_the_tables_the_code_defines(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    ignored = {"alembic_version"}
    drift = [d for d in diff if not (d[0] == "remove_table" and d[1].name in ignored)]
    assert drift == []
