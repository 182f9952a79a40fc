"""A page's writes are made only while the run holds its list's lock, on each backend;
on PostgreSQL the check rides in the writing statement itself."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, select, text

from listrak_source.errors import LockLostError
from listrak_source.records import Change, Kind
from listrak_source.state import page_sql
from listrak_source.state.locks import (
    AdvisoryLocks,
    FileLocks,
    HeldLock,
    SessionLock,
    list_locks,
    lock_folder,
)
from listrak_source.state.schema import members

LIST = 1001
HOLDER = "page-lock-test:1:abc"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _new(key: str) -> Change:
    return Change(key, key, True, None, Kind.SUBSCRIBED, "m-" + key, is_new=True)


def _flush(engine: Engine, key: str, lock: HeldLock) -> None:
    """A page of one new contact, written only while `lock` is held."""
    with engine.begin() as conn:
        writes = page_sql.PageWrites(conn)
        page_sql.insert_new(writes, LIST, [_new(key)], NOW, posting=False, run_id=1)
        writes.flush(lock)


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(members)).scalar_one())


def _cut(engine: Engine) -> None:
    """What a database restart or a lost connection does to the run's lock."""
    if engine.dialect.name == "sqlite":
        FileLocks(lock_folder(engine.url.database)).path(LIST).unlink()
        return
    with engine.begin() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :holder"
            ),
            {"holder": HOLDER},
        )


def test_a_page_is_written_while_the_lock_is_held_and_not_once_it_is_lost(
    engine: Engine,
) -> None:
    lock = list_locks(engine).take(LIST, HOLDER)
    try:
        _flush(engine, "a@x.io", lock)
        assert _stored(engine) == 1
        _cut(engine)
        with pytest.raises(LockLostError, match=f"list {LIST}: lost its lock"):
            _flush(engine, "b@x.io", lock)
        assert _stored(engine) == 1, "nothing of the page was written"
    finally:
        lock.release()


@pytest.mark.postgres
def test_postgres_checks_the_lock_in_the_page_statement_without_a_round_trip(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = AdvisoryLocks(postgres_engine).take(LIST, HOLDER)
    assert isinstance(lock, SessionLock)
    asked: list[object] = []
    monkeypatch.setattr(SessionLock, "verify", lambda self: asked.append(self))
    identity = SessionLock._identity
    monkeypatch.setattr(SessionLock, "_identity", lambda self: asked.append(0) or identity(self))
    try:
        for n in range(3):
            _flush(postgres_engine, f"{n}@x.io", lock)
        assert _stored(postgres_engine) == 3
        assert asked == [0], "the session was asked who it is once, and never to verify"
    finally:
        lock.release()


@pytest.mark.postgres
def test_the_check_names_the_holding_session_by_its_start_too(postgres_engine: Engine) -> None:
    """A later session given the same process id is not the holder."""
    lock = AdvisoryLocks(postgres_engine).take(LIST, HOLDER)
    held = lock.held_query()
    assert held is not None
    sql, (pid, started, *key) = held
    try:
        with postgres_engine.connect() as conn:
            count = conn.exec_driver_sql(sql, (pid, started, *key)).scalar_one()
            assert count == 1
            later = conn.exec_driver_sql(sql, (pid, started.replace(year=2999), *key))
            assert later.scalar_one() == 0
            other_list = conn.exec_driver_sql(sql, (pid, started, key[0], LIST + 1))
            assert other_list.scalar_one() == 0
    finally:
        lock.release()
    with postgres_engine.connect() as conn:
        assert conn.exec_driver_sql(sql, (pid, started, *key)).scalar_one() == 0
