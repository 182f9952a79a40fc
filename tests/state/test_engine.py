"""Schema versions: the head constant matches the scripts, upgrades are idempotent."""

from __future__ import annotations

import sqlite3
import threading
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


class _Cursor:
    """Refuses its first statements as SQLite refuses a connection that lost a race."""

    def __init__(self, refusals: int, message: str = "database is locked") -> None:
        self.refusals, self.message, self.tries = refusals, message, 0

    def execute(self, _sql: str) -> None:
        self.tries += 1
        if self.tries <= self.refusals:
            raise sqlite3.OperationalError(self.message)


def test_a_connection_that_loses_the_race_into_wal_tries_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(db, "_WAL_RETRY_SECONDS", 0.0)
    cursor = _Cursor(refusals=3)
    db._into_wal(cursor)
    assert cursor.tries == 4
    other = _Cursor(refusals=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        db._into_wal(other)  # only a lock is waited out
    assert other.tries == 1


def test_workers_starting_together_on_a_new_sqlite_file_all_connect(tmp_path: Path) -> None:
    """Each round four connections open a new file at once; one round in eight failed
    before a connection that lost the race into WAL mode tried again."""
    for round_ in range(20):
        url = f"sqlite:///{tmp_path / f'state-{round_}.db'}"
        assert _connect_together(url, 4) == [], round_


def _connect_together(url: str, workers: int) -> list[Exception]:
    """What each of `workers` threads, each with an engine of its own, met connecting at
    the same moment."""
    barrier, failures = threading.Barrier(workers), []

    def connect() -> None:
        engine = db.make_engine(url)
        barrier.wait()
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as exc:
            failures.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=connect) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


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


@pytest.mark.postgres
def test_a_session_silent_past_the_threshold_is_pinged_though_it_was_taken_since(
    postgres_url: str,
) -> None:
    """A page with nothing to read or write takes a connection and gives it back without a
    word to the server, which may end the session for its silence (idle_session_timeout)."""
    now = [0.0]
    engine = create_engine(postgres_url)
    db.IdlePing(engine, clock=lambda: now[0]).listen()
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        ended = _backend_pid(engine)
        now[0] = db.PING_AFTER_IDLE_S * 0.6
        with engine.connect():
            pass  # taken and given back, no statement
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": ended})
        now[0] = db.PING_AFTER_IDLE_S * 1.2
        assert _backend_pid(engine) != ended
    finally:
        engine.dispose()
        admin.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("style", ["SQL,DMY", "German", "Postgres,MDY"])
def test_a_server_in_another_date_style_gives_the_worker_iso_dates(
    postgres_url: str, style: str
) -> None:
    """psycopg reads dates only in ISO style."""
    engine = db.make_engine(f"{postgres_url}%20-cDateStyle%3D{style.replace(',', '%2C')}")
    try:
        for _ in range(2):  # a session given back to the pool is rolled back
            with engine.connect() as conn:
                moment = conn.execute(text("SELECT timestamptz '2026-12-07 10:00+00'")).scalar()
                assert moment is not None and moment.year == 2026
                assert str(conn.execute(text("SHOW DateStyle")).scalar()).startswith("ISO")
    finally:
        engine.dispose()
