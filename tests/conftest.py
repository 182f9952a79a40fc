"""Shared fixtures: a database URL per backend, and the simulator and sink on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from listrak_source import simulator
from listrak_source.state import make_engine, upgrade
from listrak_source.state.locks import lock_folder

DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

# Property tests judge what the code does, never how fast: on a loaded 2-core machine a
# generated example may take long, and that is no failure.
settings.register_profile("project", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("project")


def postgres_base_url() -> str:
    """The server the Postgres tests use; CI sets LISTRAK_SOURCE_TEST_POSTGRES."""
    return os.environ.get("LISTRAK_SOURCE_TEST_POSTGRES", DEFAULT_POSTGRES)


def _postgres_required() -> bool:
    return os.environ.get("CI") == "true" or "LISTRAK_SOURCE_TEST_POSTGRES" in os.environ


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """Skip (visibly) without a server, except in CI, where a missing server is a failure."""
    url = postgres_base_url()
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError as exc:
        reason = f"PostgreSQL not reachable at {url}: {str(exc.orig).splitlines()[0]}"
        if _postgres_required():
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A fresh schema per test, dropped afterwards, reached through search_path."""
    yield from _fresh_schema(postgres_server)


def _fresh_schema(postgres_server: str) -> Iterator[str]:
    schema = f"lsrc_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_server else "?"
    yield f"{postgres_server}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite file per test."""
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each end-to-end test runs on SQLite and on the real PostgreSQL server."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def other_db_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second fresh database, on the same backend as `db_url`."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    yield from _fresh_schema(request.getfixturevalue("postgres_server"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a migrated database, on each backend."""
    yield from _migrated(db_url)


@pytest.fixture
def postgres_engine(postgres_url: str) -> Iterator[Engine]:
    """An engine on a migrated PostgreSQL schema, for what only PostgreSQL does."""
    yield from _migrated(postgres_url)


def _migrated(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def sim() -> Iterator[simulator.ListrakSimulator]:
    """A Listrak simulator on loopback."""
    with simulator.ListrakSimulator() as server:
        yield server


@pytest.fixture
def sink() -> Iterator[simulator.SegmentSink]:
    """A Segment sink on loopback."""
    with simulator.SegmentSink() as server:
        yield server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests and the daemon's subprocess tests are `slow`; `-m 'not slow'` skips them."""
    for item in items:
        parts = item.path.parts
        if "e2e" in parts or item.path.name == "test_daemon.py":
            item.add_marker(pytest.mark.slow)


def cut_the_lock(db_url: str, holder: str, list_id: int) -> None:
    """What a database restart or a lost connection does to a run's lock."""
    engine = make_engine(db_url)
    try:
        if engine.dialect.name == "sqlite":
            lock_folder(engine.url.database).joinpath(f"list-{list_id}.lock").unlink()
            return
        with engine.begin() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = :holder"
                ),
                {"holder": holder},
            )
    finally:
        engine.dispose()
