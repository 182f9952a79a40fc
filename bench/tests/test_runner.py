"""Cases and their floors run through the launcher against the fakes, in order, and checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from bench.runner import run_size
from bench.world import World

POSTGRES = os.environ.get(
    "LISTRAK_SOURCE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.mark.slow
def test_each_repeat_runs_after_its_floor_and_a_first_sync_repeats_on_an_empty_database() -> None:
    results = run_size(3_000, ["first", "nochange"], postgres=None, profile_dir=None, repeat=2)

    order = [r.case for r in results]
    assert order == ["floor", "first"] * 2 + ["floor-scan", "nochange"] * 2
    sent = {r.case: r.verdict.received for r in results}
    assert sent == {"floor": 3_000, "first": 3_000, "floor-scan": 0, "nochange": 0}
    assert all(r.verdict.ok and not r.run.exit_code for r in results)
    assert all(r.served.contacts == 3_000 for r in results)


def _schemas(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'bench_%'")
            return {row[0] for row in conn.execute(query)}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_fresh_database_drops_the_old_schema(tmp_path: Path) -> None:
    try:
        before = _schemas(POSTGRES)
    except OperationalError:
        pytest.skip("PostgreSQL is not reachable")
    with World(10, tmp_path, postgres=POSTGRES) as world:
        first_url = world.db.url
        world.fresh_database()
        assert world.db.url != first_url
        assert first_url not in world.config.read_text()
        assert len(_schemas(POSTGRES) - before) == 1
    assert _schemas(POSTGRES) == before


def test_a_fresh_sqlite_database_is_a_new_file_and_the_old_one_goes(tmp_path: Path) -> None:
    with World(10, tmp_path, postgres=None) as world:
        old = tmp_path / "state.db"
        old.write_bytes(b"")
        world.fresh_database()
        assert not old.exists()
        assert "state-2.db" in world.config.read_text()
        assert "state-2.db" in world.incremental_config.read_text()
