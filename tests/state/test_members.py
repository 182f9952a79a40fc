"""A page is read, diffed and written in one transaction, on both backends; a page that
matches what is stored writes nothing, and the run remembers whom its scan saw."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from listrak_source.records import Change, Contact, Kind, PageDiff, PageKeys, Reject, Stored
from listrak_source.state import Database, make_engine, page_sql, upgrade
from listrak_source.state.schema import members, rejects
from listrak_source.state.transactions import Transactions
from listrak_source.subscribers.diff import diff_page

from .statements import recorded

LIST = 1001
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


@pytest.fixture
def store(engine: Engine) -> Database:
    return Database(engine)


def save(store: Database, run_id: int, contacts: list[Contact]) -> PageDiff:
    ids = (f"m-{run_id}-{n}" for n in itertools.count())

    def differ(stored: Mapping[str, Stored], same: Collection[str]) -> PageDiff:
        fresh = [c for c in contacts if c.key not in same]
        return diff_page(fresh, stored, user_id_field=None, run_id=run_id, new_id=ids.__next__)

    return store.members.save_page(LIST, run_id, PageKeys.of(contacts), differ, NOW)


def stored_rows(engine: Engine) -> list[tuple[object, ...]]:
    """Every column of every row, and on PostgreSQL the transaction that last wrote it."""
    written = [text("xmin::text")] if engine.dialect.name == "postgresql" else []
    with engine.connect() as conn:
        query = select(members, *written).order_by(members.c.email_key)
        return [tuple(row) for row in conn.execute(query)]


def test_subscribed_contacts_count_as_seen_and_unsubscribed_ones_do_not(store: Database) -> None:
    save(store, 1, [Contact("a@x.io", True), Contact("b@x.io", True), Contact("c@x.io", True)])
    page = save(store, 2, [Contact("A@x.io", True), Contact("b@x.io", False)])
    assert [(c.key, c.subscribed) for c in page.changes] == [("b@x.io", False)]
    assert store.members.count_unseen(LIST, 2) == (1, 2)  # c, of a and c still subscribed
    assert store.members.unseen(LIST, 2, 10) == [("c@x.io", "c@x.io")]


def test_a_scan_that_missed_some_counts_them_without_reading_a_key(store: Database) -> None:
    everyone = [Contact(f"{name}@x.io", True) for name in "abcd"]
    save(store, 1, everyone)
    save(store, 2, [everyone[0], everyone[2]])
    with recorded(store.engine, "SELECT") as reads:
        assert store.members.count_unseen(LIST, 2) == (2, 4)
    # One count; on SQLite, first the list's last size and the table's (to choose the walk).
    assert [sql for sql, _ in reads if "count(" in sql] == [reads[-1][0]]
    assert not [sql for sql, _ in reads if "email_key" in sql]
    assert store.members.unseen(LIST, 2, 10) == [("b@x.io", "b@x.io"), ("d@x.io", "d@x.io")]


def test_a_page_that_matches_what_is_stored_writes_nothing(store: Database) -> None:
    contacts = [Contact("a@x.io", True), Contact("B@x.io", True), Contact("gone@x.io", False)]
    save(store, 1, contacts)
    before = stored_rows(store.engine)
    page = save(store, 2, contacts)
    assert page.changes == [] and page.rejects == []
    assert stored_rows(store.engine) == before
    assert store.members.count_unseen(LIST, 2) == (0, 0)


def test_a_contact_twice_in_one_scan_is_refused_the_second_time(store: Database) -> None:
    save(store, 1, [Contact("a@x.io", True)])
    save(store, 2, [Contact("a@x.io", True)])
    again = save(store, 2, [Contact("a@x.io", True), Contact("new@x.io", True)])
    assert [r.reason for r in again.rejects] == ["duplicate email in one scan"]
    assert [c.key for c in again.changes] == ["new@x.io"]
    first_time = save(store, 2, [Contact("fresh@x.io", True), Contact("Fresh@x.io", True)])
    assert [r.email for r in first_time.rejects] == ["Fresh@x.io"]


def test_a_page_that_fails_to_diff_counts_nobody_as_seen(store: Database) -> None:
    save(store, 1, [Contact("a@x.io", True)])

    def broken(_stored: Mapping[str, Stored], _same: Collection[str]) -> PageDiff:
        raise RuntimeError("diff failed")

    with pytest.raises(RuntimeError):
        store.members.save_page(LIST, 2, PageKeys(["a@x.io"], []), broken, NOW)
    assert store.members.count_unseen(LIST, 2) == (1, 1)
    # Stored again, it is no duplicate: the failed page left nothing behind.
    assert save(store, 2, [Contact("a@x.io", True)]).rejects == []


def test_a_pages_writes_land_together_or_not_at_all(store: Database) -> None:
    save(store, 1, [Contact("a@x.io", True), Contact("b@x.io", True)])
    before = stored_rows(store.engine)
    new = Change("new@x.io", "new@x.io", True, None, Kind.SUBSCRIBED, "m-2-0", is_new=True)
    gone = Change("a@x.io", "a@x.io", False, None, Kind.UNSUBSCRIBED, "m-2-1")
    reject = Reject("invalid emailAddress", "not-an-address")
    # The new row is written first; this change breaks a constraint (a row's address is
    # never empty), so its write fails, and the page's others with it.
    broken = gone._replace(email=None)
    keys = PageKeys(["new@x.io"], ["a@x.io"])
    with pytest.raises(IntegrityError):
        store.members.save_page(
            LIST, 2, keys, lambda _s, _same: PageDiff([new, broken], [reject]), NOW
        )
    assert stored_rows(store.engine) == before
    assert stored_rejects(store.engine) == []
    store.members.save_page(LIST, 3, keys, lambda _s, _same: PageDiff([new, gone], [reject]), NOW)
    assert [r[1:4] for r in stored_rows(store.engine)] == [
        ("a@x.io", "a@x.io", False),
        ("b@x.io", "b@x.io", True),
        ("new@x.io", "new@x.io", True),
    ]
    assert stored_rejects(store.engine) == [
        (LIST, 3, "not-an-address", "invalid emailAddress", NOW)
    ]


def test_on_postgres_a_pages_statements_each_commit_by_themselves(store: Database) -> None:
    """There a page's read and its writes (one statement) are a round trip each, with no
    BEGIN and COMMIT around them; a dry run's shared connection keeps its transaction."""
    postgres = store.engine.dialect.name == "postgresql"
    with Transactions(store.engine).read_then_write() as conn:
        driver = conn.connection.driver_connection
        assert _autocommit(driver) is postgres
    assert not _autocommit(driver)  # back in the pool as it was
    with (
        store.engine.connect() as shared,
        Transactions(store.engine, shared).read_then_write() as conn,
    ):
        assert conn is shared and not _autocommit(conn.connection.driver_connection)


def _autocommit(driver: object) -> bool:
    """psycopg's own flag; sqlite3 (before Python 3.12) has none, and never autocommits here."""
    return getattr(driver, "autocommit", False) is True


def stored_rejects(engine: Engine) -> list[tuple[object, ...]]:
    c = rejects.c
    with engine.connect() as conn:
        query = select(c.list_id, c.run_id, c.email, c.reason, c.created_at).order_by(c.id)
        return [tuple(row) for row in conn.execute(query)]


def test_a_new_run_of_the_list_starts_with_nobody_seen(store: Database) -> None:
    save(store, 1, [Contact("a@x.io", True), Contact("b@x.io", True)])
    save(store, 2, [Contact("a@x.io", True)])
    assert store.members.count_unseen(LIST, 2) == (1, 2)
    save(store, 3, [Contact("b@x.io", True)])
    assert store.members.unseen(LIST, 3, 10) == [("a@x.io", "a@x.io")]
    store.members.end_scan(LIST)
    assert store.members.count_unseen(LIST, 3) == (2, 2)


def test_after_statistics_sqlite_reads_a_whole_list_in_table_order(sqlite_url: str) -> None:
    # Without statistics SQLite walks the (list_id, email_key) index and looks every row
    # up at random: 3.7 s instead of 0.25 s for a sweep's count at 1 M rows.
    engine = make_engine(sqlite_url)
    upgrade(engine)
    store = Database(engine)
    save(store, 1, [Contact(f"c{n}@x.io", True) for n in range(200)])
    count = "SELECT count(*) FROM members WHERE list_id = 1001 AND desired_subscribed = 1"
    by_key = "SELECT email FROM members WHERE list_id = 1001 AND email_key = 'c1@x.io'"

    def plan(sql: str) -> str:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all())

    assert "USING INDEX" in plan(count)
    store.members.refresh_statistics()
    assert "SCAN members" in plan(count)
    assert "USING INDEX" in plan(by_key)  # a page's look-ups still use the index
    engine.dispose()


def test_after_a_scan_both_analyze_when_the_list_grew_a_tenth_sqlite_also_when_the_table_did(
    engine: Engine,
) -> None:
    store = Database(engine)
    settle = store.members.refresh_statistics_after_scan
    # (contacts scanned, whether PostgreSQL analyzes, whether SQLite does): all new; none
    # new; 10 of 210 (the table a twentieth larger than when analyzed); 11 of 221 (the
    # list grew under a tenth, the table over a tenth since 200); 49 of 270 (a tenth and
    # more); 30 of 300 (a tenth exactly, of the list and of the table); 30 of 330 (under a
    # tenth of the list, and the table exactly a tenth larger than at 300).
    scans = [
        (200, True, True),
        (200, False, False),
        (210, False, False),
        (221, False, True),
        (270, True, True),
        (300, True, True),
        (330, False, False),
    ]
    on_postgres = engine.dialect.name == "postgresql"
    for run_id, (count, on_pg, on_sqlite) in enumerate(scans, start=1):
        ran = _after_a_scan(store, run_id, count, settle, "ANALYZE")
        assert ran == (on_pg if on_postgres else on_sqlite), count


def test_a_lists_first_complete_full_scan_analyzes_however_little_it_stored(
    engine: Engine,
) -> None:
    """A first sync cut short stored most of the list in runs that never finished a scan:
    the scan that first does finds few new rows, and the statistics may not know the list."""
    store = Database(engine)
    save(store, 1, [Contact(f"c{n}@x.io", True) for n in range(200)])
    store.members.refresh_statistics()
    settle = store.members.refresh_statistics_after_scan
    assert not _after_a_scan(store, 2, 210, settle, "ANALYZE")  # 10 new, not the first
    first = functools.partial(settle, first=True)
    assert _after_a_scan(store, 3, 215, first, "ANALYZE")  # 5 new, the first to finish


def _after_a_scan(
    store: Database, run_id: int, count: int, settle: Callable[[int, int], None], verb: str
) -> bool:
    """Whether `settle`, after a delivered scan of the first `count` contacts, sent a
    statement beginning with `verb`."""
    save(store, run_id, [Contact(f"c{n}@x.io", True) for n in range(count)])
    accept_all(store)
    with recorded(store.engine, verb) as sent:
        settle(LIST, run_id)
    return bool(sent)


def test_postgres_vacuums_after_a_scan_that_grew_the_list_a_tenth_and_sqlite_never(
    engine: Engine,
) -> None:
    store = Database(engine)
    settle = store.members.vacuum_after_growth
    # (contacts scanned, new among them): all new, none, 100 of 300, 33 of 333 (under a
    # tenth).
    scans = [(200, True), (200, False), (300, True), (333, False)]
    on_postgres = engine.dialect.name == "postgresql"
    for run_id, (count, grew_a_tenth) in enumerate(scans, start=1):
        ran = _after_a_scan(store, run_id, count, settle, "VACUUM")
        assert ran == (grew_a_tenth and on_postgres), count
    store.members.end_scan(LIST)
    with recorded(engine, "VACUUM") as vacuumed:
        store.members.vacuum_after_growth(LIST, 4)  # the scan is over: nothing to judge by
    assert vacuumed == []


@pytest.mark.postgres
def test_a_vacuum_that_fails_leaves_the_run_standing(
    postgres_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """VACUUM is housekeeping autovacuum also does: its failure is a warning, not an error."""
    engine = postgres_engine
    store = Database(engine)

    def refuse(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("VACUUM"):
            cause = Exception("canceling statement due to statement timeout")
            raise OperationalError(statement, None, cause)

    save(store, 1, [Contact(f"c{n}@x.io", True) for n in range(10)])
    event.listen(engine, "before_cursor_execute", refuse)
    try:
        store.members.vacuum_after_growth(LIST, 1)
    finally:
        event.remove(engine, "before_cursor_execute", refuse)
    assert [r.getMessage() for r in caplog.records] == [
        "VACUUM after the list grew did not finish: canceling statement due to statement timeout"
    ]


def test_the_unseen_are_counted_right_past_duplicates_and_unreadable_contacts(
    store: Database,
) -> None:
    save(store, 1, [Contact("a@x.io", True), Contact("b@x.io", True), Contact("c@x.io", True)])
    save(store, 2, [Contact("a@x.io", True), Contact("A@x.io", True)])
    save(store, 2, [Contact("a@x.io", True)])
    # Unreadable but on the list, then readable on a later page: stored once, and seen.
    unreadable = PageKeys.of([], [Reject("bad field", email="New@x.io")])
    store.members.save_page(LIST, 2, unreadable, lambda _stored, _same: PageDiff(), NOW)
    assert [c.key for c in save(store, 2, [Contact("new@x.io", True)]).changes] == ["new@x.io"]
    assert store.members.count_unseen(LIST, 2) == (2, 4)  # b and c, of a, b, c and new
    save(store, 2, [Contact("b@x.io", True), Contact("c@x.io", True)])
    assert store.members.count_unseen(LIST, 2) == (0, 0)
    assert store.members.unseen(LIST, 2, 10) == []


def accept_all(store: Database) -> None:
    with store.engine.connect() as conn:
        ids = [m for (m,) in conn.execute(select(members.c.message_id)) if m is not None]
    store.outbox.mark_sent(LIST, ids)


def carries_message(store: Database, key: str) -> bool:
    with store.engine.connect() as conn:
        query = select(members.c.message_id).where(members.c.email_key == key)
        return conn.execute(query).scalar_one() is not None


@pytest.mark.parametrize("requeue", ["rename", "backfill"])
def test_a_change_back_after_a_rename_or_backfill_still_goes_out(
    store: Database, requeue: str
) -> None:
    # Segment holds the old trait (or, emptied, nothing): sent no longer says what it holds.
    save(store, 1, [Contact("a@x.io", True), Contact("b@x.io", True)])
    accept_all(store)
    ids = (f"r-{n}" for n in itertools.count())
    if requeue == "rename":
        store.traits.adopt(LIST, "Listrak_list_1001")
        store.traits.rename(LIST, "listrak_list_1001", NOW, ids.__next__)
    else:
        store.members.requeue_all(LIST, NOW, ids.__next__)
    save(store, 2, [Contact("a@x.io", False)])
    save(store, 3, [Contact("a@x.io", True)])
    assert carries_message(store, "a@x.io") and carries_message(store, "b@x.io")


@pytest.mark.postgres
def test_postgres_streams_a_lists_keys_through_a_server_side_cursor(postgres_url: str) -> None:
    # A client-side cursor would hold every key of a million-row list at once (245 MB).
    engine = make_engine(postgres_url)
    upgrade(engine)
    save(Database(engine), 1, [Contact(f"c{n}@x.io", True) for n in range(6000)])
    with engine.begin() as conn:
        chunks = page_sql.subscribed_rows(conn, LIST)
        first = next(chunks)
        cursors = conn.exec_driver_sql("SELECT count(*) FROM pg_cursors").scalar_one()
        rest = sum(len(chunk) for chunk in chunks)
    engine.dispose()
    assert cursors == 1
    assert len(first) + rest == 6000
