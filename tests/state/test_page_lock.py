"""A page's writes are made only while the run holds its list's lock, on each backend;
on PostgreSQL the check rides in the writing statement itself, and the lock's session is
still spoken to once a second."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, create_engine, func, make_url, select

from listrak_source.errors import LockLostError
from listrak_source.records import Change, Kind, PageDiff, PageKeys
from listrak_source.state import Database, make_engine, page_sql, upgrade
from listrak_source.state.locks import (
    KEEPALIVE_S,
    AdvisoryLocks,
    HeldLock,
    SessionLock,
    list_locks,
)
from listrak_source.state.schema import members

from ..conftest import _fresh_schema, _migrated, cut_the_lock

LIST = 1001
# Its own in each test process: _cut ends every session of this name on the server.
HOLDER = f"page-lock-test:1:{uuid.uuid4().hex[:8]}"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _new(key: str) -> Change:
    return Change(key, key, True, None, Kind.SUBSCRIBED, "m-" + key, is_new=True)


def _write(conn: Connection, key: str, lock: HeldLock) -> None:
    writes = page_sql.PageWrites(conn)
    page_sql.insert_new(writes, LIST, [_new(key)], NOW, posting=False, run_id=1)
    writes.flush(lock)


def _flush(engine: Engine, key: str, lock: HeldLock) -> None:
    """A page of one new contact on a connection that commits each statement by itself
    (as a real run's pages are written on PostgreSQL), only while `lock` is held."""
    with engine.connect() as conn:
        _write(conn.execution_options(isolation_level="AUTOCOMMIT"), key, lock)


def _stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(members)).scalar_one())


def _cut(engine: Engine) -> None:
    cut_the_lock(engine.url.render_as_string(hide_password=False), HOLDER, LIST)


class Verifies:
    """Counts a SessionLock's `verify` calls, each still made."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = SessionLock.verify

        def verify(lock: SessionLock) -> None:
            self.calls += 1
            real(lock)

        monkeypatch.setattr(SessionLock, "verify", verify)


@dataclass
class Held:
    """A PostgreSQL list lock on the test's clock, with its `verify` calls counted."""

    lock: HeldLock
    clock: Clock
    verifies: Verifies


@pytest.fixture
def held(postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    verifies, clock = Verifies(monkeypatch), Clock()
    lock = AdvisoryLocks(postgres_engine, clock=clock).take(LIST, HOLDER)
    yield Held(lock, clock, verifies)
    lock.release()


def _pages(engine: Engine, held: Held, count: int, *, every: float) -> None:
    """`count` pages of one new contact each, one every `every` seconds of the test's clock."""
    for n in range(count):
        held.clock.now += every
        _flush(engine, f"{n}@x.io", held.lock)


def _marks(engine: Engine) -> int:
    """The two-key advisory locks this test's lock session holds: its marks."""
    with engine.connect() as conn:
        sql = (
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND a.application_name = %s"
        )
        return int(conn.exec_driver_sql(sql, (HOLDER,)).scalar_one())


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
def test_postgres_checks_the_lock_in_the_page_statement_not_by_a_round_trip(
    postgres_engine: Engine, held: Held
) -> None:
    _pages(postgres_engine, held, 3, every=KEEPALIVE_S / 4)
    assert _stored(postgres_engine) == 3
    assert held.verifies.calls == 0
    assert _marks(postgres_engine) == 1, "the session took its mark once"
    _cut(postgres_engine)
    with pytest.raises(LockLostError, match="no longer holds it"):
        _flush(postgres_engine, "3@x.io", held.lock)
    assert _stored(postgres_engine) == 3
    held.lock.release()
    assert _marks(postgres_engine) == 0, "the mark ends with the session"


@pytest.mark.postgres
def test_the_lock_session_is_spoken_to_once_a_second_while_pages_are_written(
    postgres_engine: Engine, held: Held
) -> None:
    """A server's idle_session_timeout would end a lock session left silent through a scan."""
    _pages(postgres_engine, held, 8, every=KEEPALIVE_S / 2)
    # Over 4 s, a page every 0.5 s: the mark taken at 0.5 s, then a check at 1.5, 2.5, 3.5.
    assert held.verifies.calls == 3
    assert not held.lock.due()
    held.clock.now += KEEPALIVE_S
    assert held.lock.due()


@pytest.mark.postgres
def test_in_a_shared_transaction_a_lost_lock_fails_no_statement(
    postgres_engine: Engine, held: Held
) -> None:
    """A dry run writes every list in one transaction: the check is the lock session's own,
    so a list that lost its lock leaves the transaction usable for the next list."""
    with postgres_engine.connect() as conn, conn.begin() as transaction:
        _write(conn, "a@x.io", held.lock)
        _cut(postgres_engine)
        with pytest.raises(LockLostError):
            _write(conn, "b@x.io", held.lock)
        assert conn.exec_driver_sql("SELECT count(*) FROM members").scalar_one() == 1
        transaction.rollback()
    assert held.verifies.calls == 2


@pytest.mark.postgres
def test_a_session_acting_as_another_role_still_sees_its_lock_held(
    postgres_server: str,
) -> None:
    """A login role that sets an owner role (`-c role=...`), whose rights do not cover the
    login role's, sees no start time of its own sessions in pg_stat_activity; pg_locks
    shows every session's locks to every role."""
    tag = uuid.uuid4().hex[:8]
    login, owner = f"lsrc_login_{tag}", f"lsrc_owner_{tag}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for sql in (
            f"CREATE ROLE {login} LOGIN",
            f"CREATE ROLE {owner} NOLOGIN",
            f"GRANT {owner} TO {login}",
        ):
            conn.exec_driver_sql(sql)
    try:
        _write_as(postgres_server, login, owner)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP ROLE {login}")
            conn.exec_driver_sql(f"DROP ROLE {owner}")
        admin.dispose()


def _write_as(postgres_server: str, login: str, owner: str) -> None:
    for url in _fresh_schema(postgres_server):
        schema = url.rsplit("search_path%3D", 1)[1]
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"GRANT ALL ON SCHEMA {schema} TO {owner}")
        admin.dispose()
        acting = make_url(url).set(username=login)
        options = f"{acting.query['options']} -c role={owner}"
        for engine in _migrated(str(acting.update_query_dict({"options": options}))):
            lock = AdvisoryLocks(engine, clock=Clock()).take(LIST, HOLDER)
            try:
                _flush(engine, "a@x.io", lock)
                assert _stored(engine) == 1
            finally:
                lock.release()


def test_a_page_that_writes_nothing_checks_a_lock_that_is_due(engine: Engine) -> None:
    """A re-sync with no change still speaks to the lock's session once a second."""

    class Due(HeldLock):
        def __init__(self) -> None:
            super().__init__(LIST, HOLDER)
            self.checks = 0
            self.is_due = False

        def verify(self) -> None:
            self.checks += 1

        def release(self) -> None:
            pass

        def due(self) -> bool:
            return self.is_due

    lock, db = Due(), Database(engine)
    for due in (False, True):
        lock.is_due = due
        db.members.save_page(LIST, 1, PageKeys([], []), lambda _s, _m: PageDiff(), NOW, lock=lock)
    assert lock.checks == 1


@pytest.mark.postgres
def test_a_restart_that_ends_every_session_stops_the_page_as_a_lost_lock(
    postgres_url: str,
) -> None:
    """The page's statement fails first, on a pooled session the server ended; the run
    says its lock is gone, as a check of the lock before the page said."""
    engine = make_engine(postgres_url)
    lock = AdvisoryLocks(engine, clock=Clock()).take(LIST, HOLDER)
    db = Database(engine)
    try:
        upgrade(engine)
        _save(db, "a@x.io", lock)
        with engine.connect() as conn:
            pooled = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        _cut(engine)
        admin = create_engine(postgres_url)
        with admin.begin() as conn:
            conn.exec_driver_sql("SELECT pg_terminate_backend(%s)", (pooled,))
        admin.dispose()
        with pytest.raises(LockLostError, match="its database session ended"):
            _save(db, "b@x.io", lock)
    finally:
        lock.release()
        engine.dispose()


def _save(db: Database, key: str, lock: HeldLock) -> None:
    page = PageDiff([_new(key)], [])
    db.members.save_page(LIST, 1, PageKeys([key], []), lambda _s, _m: page, NOW, lock=lock)


@pytest.mark.postgres
def test_the_check_wants_the_lists_lock_and_the_mark_held_by_one_session(
    postgres_engine: Engine, held: Held
) -> None:
    """A later session given the same process id cannot hold the mark."""
    query = held.lock.held_query()
    assert query is not None
    sql, (high, low, *mark) = query
    other = create_engine(postgres_engine.url, isolation_level="AUTOCOMMIT")
    try:
        with postgres_engine.connect() as conn, other.connect() as elsewhere:

            def count(*params: int) -> int:
                return int(conn.exec_driver_sql(sql, params).scalar_one())

            assert count(high, low, *mark) == 1
            assert count(high, low, mark[0], mark[1] ^ 1) == 0, "another session's mark"
            assert count(high, low + 1, *mark) == 0, "another list"
            elsewhere.exec_driver_sql("SELECT pg_advisory_lock(%s, %s)", (mark[0], mark[1] ^ 1))
            assert count(high, low, mark[0], mark[1] ^ 1) == 0, "the mark in another session"
    finally:
        held.lock.release()
        other.dispose()
    with postgres_engine.connect() as conn:
        assert conn.exec_driver_sql(sql, (high, low, *mark)).scalar_one() == 0
