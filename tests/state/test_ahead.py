"""The list's rows read on a thread of their own while a pass's first pages are stored: the
read's result and errors reach the scan's thread, the thread is used only where it may be,
and a read nobody needs any more stops."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from listrak_source.records import Contact
from listrak_source.state import Database, page_sql
from listrak_source.state.ahead import Ahead, Cancelled
from listrak_source.state.members import Members

from .test_members import LIST, save


def test_the_result_and_the_error_reach_the_thread_that_waits() -> None:
    assert Ahead(lambda _cancelled: 42, name="t").result() == 42

    def fail(_cancelled: threading.Event) -> int:
        raise ValueError("the read failed")

    with pytest.raises(ValueError, match="the read failed"):
        Ahead(fail, name="t").result()


def test_a_cancelled_read_stops_at_its_next_look() -> None:
    looked = threading.Event()

    def work(cancelled: threading.Event) -> int:
        while not cancelled.wait(0.01):
            looked.set()
        raise Cancelled("not wanted")

    ahead = Ahead(work, name="t")
    assert looked.wait(5)
    assert ahead.running
    ahead.cancel()
    assert not ahead.running  # it waited for the work to stop
    with pytest.raises(Cancelled):
        ahead.result()


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the threads that read the list's rows, one a read."""
    names: list[str] = []
    read = Members._read_current

    def recorded(self: Members, *args: Any, **kwargs: Any) -> Any:
        names.append(threading.current_thread().name)
        return read(self, *args, **kwargs)

    monkeypatch.setattr(Members, "_read_current", recorded)
    yield names


def _stored(db: Database) -> None:
    contacts = [Contact(f"p{n}@x.io", True) for n in range(6)]
    save(db, 1, contacts)
    db.members.end_scan(LIST)


def _begin_pass(db: Database, run_id: int) -> None:
    """What a scan says before and after its first request, on a pass over the whole list."""
    db.members.whole_pass(LIST, run_id)
    db.members.read_ahead(LIST, run_id, user_ids=False, digests=False)


def _third_page(db: Database, run_id: int) -> None:
    for n in range(3):
        save(db, run_id, [Contact(f"p{n}@x.io", True)])


def test_a_pass_over_the_list_reads_its_rows_on_a_thread_its_first_page_waits_for(
    engine: Engine, threads: list[str]
) -> None:
    """On PostgreSQL, where that read is the server's work; SQLite reads at the first page."""
    db = Database(engine)
    _stored(db)
    _begin_pass(db, 2)
    save(db, 2, [Contact("p0@x.io", True)])
    on_postgres = engine.dialect.name == "postgresql"
    assert threads == [f"rows-{LIST}" if on_postgres else "MainThread"]
    save(db, 2, [Contact("p1@x.io", True), Contact("p2@x.io", True)])
    assert len(threads) == 1
    assert db.members.count_unseen(LIST, 2) == (3, 6)


def test_where_no_thread_reads_a_pass_over_the_list_reads_its_rows_at_its_first_page(
    engine: Engine, threads: list[str]
) -> None:
    """The read costs the same at any page; made at the first, it spares decoding, looking
    up and diffing the two pages before the third."""
    db = Database(engine)
    _stored(db)
    db.members.reads_ahead = False  # as on SQLite and a dry run's connection
    _begin_pass(db, 2)
    save(db, 2, [Contact("p0@x.io", True)])
    assert threads == ["MainThread"]
    save(db, 2, [Contact("p1@x.io", True), Contact("p6@x.io", True)])
    assert threads == ["MainThread"]
    assert db.members.count_unseen(LIST, 2) == (4, 7)


def test_a_scan_not_over_the_whole_list_reads_its_rows_at_its_third_page(
    engine: Engine, threads: list[str]
) -> None:
    db = Database(engine)
    _stored(db)
    for n in range(2):
        save(db, 2, [Contact(f"p{n}@x.io", True)])
    assert threads == []
    save(db, 2, [Contact("p2@x.io", True)])
    assert threads == ["MainThread"]


def test_a_read_asked_for_other_rows_than_the_scan_needs_is_made_again_in_its_thread(
    engine: Engine, threads: list[str]
) -> None:
    db = Database(engine)
    _stored(db)
    db.members.reads_ahead = True
    db.members.read_ahead(LIST, 2, user_ids=True, digests=False)
    _third_page(db, 2)
    assert threads[-1] == "MainThread"
    assert db.members.count_unseen(LIST, 2) == (3, 6)


def test_no_thread_reads_a_new_list_or_a_dry_runs_connection(
    engine: Engine, threads: list[str]
) -> None:
    db = Database(engine)
    db.members.reads_ahead = True
    db.members.read_ahead(LIST, 1, user_ids=False, digests=False)  # nothing stored yet
    _stored(db)
    assert db.members._scans == {}
    with engine.connect() as conn, conn.begin():
        dry = Database(engine, connection=conn)
        dry.members.read_ahead(LIST, 2, user_ids=False, digests=False)
        _third_page(dry, 2)
    assert threads == ["MainThread"]


def test_a_scan_that_ends_before_its_first_page_stops_the_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(engine)
    _stored(db)
    stopped = threading.Event()

    def read(self: Members, *_args: Any, cancelled: threading.Event, **_kwargs: Any) -> Any:
        assert cancelled.wait(10)
        stopped.set()
        raise Cancelled("not wanted")

    monkeypatch.setattr(Members, "_read_current", read)
    db.members.reads_ahead = True  # SQLite too, which reads at the first page unless told
    db.members.read_ahead(LIST, 2, user_ids=False, digests=False)
    db.members.end_scan(LIST)  # Listrak failed, or a stop came, before the first page
    assert stopped.is_set()  # before the run goes on to close its connections


@pytest.mark.postgres
def test_a_cancelled_read_in_two_halves_leaves_no_half_reading(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second half's thread and connection are gone once the read has stopped, without
    waiting for the garbage collector."""
    engine = postgres_engine
    monkeypatch.setattr(page_sql, "BLOCKS", 1)
    db = Database(engine)
    save(db, 1, [Contact(f"p{n}@x.io", True) for n in range(600)])
    db.members.end_scan(LIST)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")

    def work(cancelled: threading.Event) -> object:
        cancelled.wait()  # looked at once the first chunk is in
        return db.members._read_current(
            LIST, 600, hash, user_ids=False, digests=True, cancelled=cancelled
        )

    gc.disable()
    try:
        ahead = Ahead(work, name="rows")
        ahead.cancel()  # the read's Cancelled stays in `ahead`, with its traceback
        assert [t for t in threading.enumerate() if t.name == "rows-beside"] == []
        with pytest.raises(Cancelled):
            ahead.result()
    finally:
        gc.enable()
