"""Schema versions: the head constant matches the scripts, upgrades are idempotent."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, inspect, text

from listrak_source.state import engine as db
from listrak_source.state import migrate as _migrate


def test_schema_head_matches_the_migration_scripts() -> None:
    assert _migrate.head(db.migrations_dir()) == db.SCHEMA_HEAD


def test_upgrade_creates_every_table_and_is_idempotent(db_url: str) -> None:
    engine = db.make_engine(db_url)
    assert db.current_revision(engine) is None
    db.upgrade(engine)
    db.upgrade(engine)
    assert db.current_revision(engine) == db.SCHEMA_HEAD
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
    assert {"members", "runs", "rejects", "list_state"} <= tables
    assert "leases" not in tables, "locks come from the database's own primitives"
    engine.dispose()


def test_known_revisions() -> None:
    assert _migrate.is_known(db.migrations_dir(), db.SCHEMA_HEAD)
    assert not _migrate.is_known(db.migrations_dir(), "9999_future")


def test_upgrade_from_the_first_schema_keeps_rows(db_url: str) -> None:
    from sqlalchemy import text

    engine = db.make_engine(db_url)
    with engine.begin() as conn:
        _migrate.upgrade_to(db.migrations_dir(), conn, "0001")
        conn.execute(
            text(
                "INSERT INTO members (list_id, email_key, email, desired_subscribed, message_id)"
                " VALUES (1, 'a@x.io', 'a@x.io', true, 'm-1')"
            )
        )
    db.upgrade(engine)
    assert db.current_revision(engine) == db.SCHEMA_HEAD
    with engine.connect() as conn:
        assert conn.execute(text("SELECT message_id FROM members")).scalar() == "m-1"
        indexes = {i["name"] for i in inspect(conn).get_indexes("members")}
    assert "ix_members_list_message" in indexes
    assert not {"ix_members_message_id", "ix_members_pending"} & indexes
    engine.dispose()


def test_upgrade_keeps_only_the_first_line_of_stored_errors(db_url: str) -> None:
    from sqlalchemy import text

    engine = db.make_engine(db_url)
    whole = "(sqlite3.IntegrityError) refused\n[SQL: INSERT ...]\n[parameters: ('a@x.io',)]"
    with engine.begin() as conn:
        _migrate.upgrade_to(db.migrations_dir(), conn, "0003")
        conn.execute(
            text(
                "INSERT INTO runs (list_id, kind, full_scan, started_at, status, scanned,"
                " subscribed, unsubscribed, user_id_changed, rejected, delivered, failed, error)"
                " VALUES (1, 'sync', true, '2026-11-23 12:00:00', 'failed', 0, 0, 0, 0, 0, 0, 0,"
                " :error)"
            ),
            {"error": whole},
        )
    db.upgrade(engine)
    with engine.connect() as conn:
        assert (
            conn.execute(text("SELECT error FROM runs")).scalar()
            == "(sqlite3.IntegrityError) refused"
        )
    engine.dispose()


def test_sqlite_connections_log_ahead_and_checkpoint_in_large_steps(tmp_path: Path) -> None:
    """Every connection of the pool gets the same settings, the log's size among them."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            pragmas = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "cache_size", "wal_autocheckpoint")
            }
    finally:
        engine.dispose()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 1,  # NORMAL
        "cache_size": -8192,
        "wal_autocheckpoint": db.WAL_CHECKPOINT_PAGES,
    }
    assert db.WAL_CHECKPOINT_PAGES * 4096 == 64 * 2**20


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.mark.postgres
def test_a_postgres_session_ended_while_idle_is_replaced_before_use(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(postgres_url)
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        ended = _backend_pid(engine)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": ended})
        # As if the pooled connection had sat idle past the ping's threshold.
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
        assert _backend_pid(engine) != ended
    finally:
        engine.dispose()
        admin.dispose()


@pytest.mark.postgres
def test_a_postgres_connection_given_back_recently_is_used_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = db.make_engine(postgres_url)
    pings: list[object] = []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or ping(conn))
    try:
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
        for _ in range(5):
            _backend_pid(engine)
        assert pings == []
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)
        pids = {_backend_pid(engine) for _ in range(5)}
        assert len(pings) == 5
        assert len(pids) == 1  # the same live session, pinged and kept
    finally:
        engine.dispose()
