"""A scan that read the list's rows whole keeps their count by what it writes, so that the
sweep's count of the unseen reads no row; where it cannot know the count, it asks the
table, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from listrak_source.records import Contact
from listrak_source.state import Database, make_engine, page_sql, upgrade
from listrak_source.state.members import Members
from listrak_source.state.schema import members

from .test_members import LIST, NOW, save

PEOPLE = [f"p{n}@x.io" for n in range(8)]


def table_count(db: Database) -> int:
    """The list's desired-subscribed rows, as the table says."""
    query = select(func.count()).where(
        members.c.list_id == LIST, members.c.desired_subscribed.is_(True)
    )
    with db.engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def scan_count(db: Database) -> int | None:
    """The running scan's own count, where it keeps one."""
    scan = db.members._scans.get(LIST)
    return None if scan is None else scan.rows


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The list ids whose subscribed rows were counted in the table."""
    asked: list[int] = []
    count = page_sql.count_subscribed

    def recorded(conn: object, list_id: int, *, walk: bool) -> int:
        asked.append(list_id)
        return count(conn, list_id, walk=walk)  # type: ignore[arg-type]

    monkeypatch.setattr(page_sql, "count_subscribed", recorded)
    yield asked


def _synced(db: Database) -> None:
    save(db, 1, [Contact(email, True) for email in PEOPLE[:6]])
    save(db, 1, [Contact(PEOPLE[6], False)])
    db.members.end_scan(LIST)


def test_a_pass_over_the_list_counts_the_unseen_without_reading_the_table(
    engine: Engine, counts: list[int]
) -> None:
    db = Database(engine)
    _synced(db)
    db.members.reads_ahead = False
    db.members.whole_pass(LIST, 2)
    save(db, 2, [Contact(PEOPLE[0], True), Contact(PEOPLE[1], False)])  # p1 leaves
    save(db, 2, [Contact(PEOPLE[6], True), Contact(PEOPLE[7], True)])  # p6 back, p7 new
    save(db, 2, [Contact(PEOPLE[2], True, fields=MappingProxyType({5: "x"}))])
    assert scan_count(db) == table_count(db) == 7
    assert db.members.count_unseen(LIST, 2) == (3, 7)  # p3, p4 and p5
    assert counts == []


def test_a_scan_that_wrote_before_it_read_the_list_asks_the_table(
    engine: Engine, counts: list[int]
) -> None:
    """Its first two pages wrote before the read at its third: a read begun ahead may or
    may not hold what they wrote."""
    db = Database(engine)
    _synced(db)
    save(db, 2, [Contact(PEOPLE[7], True)])
    save(db, 2, [Contact(PEOPLE[0], True)])
    save(db, 2, [Contact(PEOPLE[1], True)])
    assert db.members._scans[LIST].current is not None
    assert scan_count(db) is None
    assert db.members.count_unseen(LIST, 2) == (4, 7)
    assert counts == [LIST]


def test_a_removal_of_the_unseen_is_counted_in_the_table_again(
    engine: Engine, counts: list[int]
) -> None:
    db = Database(engine)
    _synced(db)
    db.members.whole_pass(LIST, 2)
    save(db, 2, [Contact(email, True) for email in PEOPLE[:4]])
    assert db.members.count_unseen(LIST, 2) == (2, 6)
    assert counts == []
    db.members.remove_unseen(LIST, 2, NOW, lambda: "gone", keys=[PEOPLE[4]])
    assert db.members.count_unseen(LIST, 2) == (1, 5)
    assert counts == [LIST]


def test_a_read_begun_ahead_and_taken_after_a_write_gives_no_count(
    postgres_engine: Engine,
) -> None:
    db = Database(postgres_engine)
    _synced(db)
    db.members.read_ahead(LIST, 2, user_ids=False, digests=False)
    save(db, 2, [Contact(PEOPLE[7], True)])
    save(db, 2, [Contact(PEOPLE[0], True)])
    save(db, 2, [Contact(PEOPLE[1], True)])
    assert db.members._scans[LIST].current is not None
    assert scan_count(db) is None


# A page: (person, subscribed) for each of its contacts.
contact = st.tuples(st.integers(0, len(PEOPLE) - 1), st.booleans())
pages = st.lists(st.lists(contact, max_size=4), max_size=5)


@settings(max_examples=40, deadline=None)
@given(runs=st.lists(pages, min_size=1, max_size=4), whole=st.booleans(), sweep=st.booleans())
def test_the_scans_count_is_the_tables_after_every_page(
    tmp_path_factory: pytest.TempPathFactory,
    runs: list[list[list[tuple[int, bool]]]],
    whole: bool,
    sweep: bool,
) -> None:
    """Whatever the pages hold: contacts new, leaving, back, twice in a page or a scan;
    counted from the first page of a pass over the whole list or the third of another;
    with the unseen removed after each scan or not."""
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('count')}/state.db")
    upgrade(engine)
    db = Database(engine)
    try:
        for run_id, scan in enumerate(runs, start=1):
            _scan(db.members, db, run_id, scan, whole=whole)
            if sweep and scan_count(db) is not None:
                db.members.count_unseen(LIST, run_id)
                db.members.remove_unseen(LIST, run_id, NOW, lambda: "gone")
                assert db.members.count_unseen(LIST, run_id)[1] in (0, table_count(db))
            db.members.end_scan(LIST)
    finally:
        engine.dispose()


def _scan(
    members: Members,
    db: Database,
    run_id: int,
    scan: list[list[tuple[int, bool]]],
    *,
    whole: bool,
) -> None:
    if whole:
        members.whole_pass(LIST, run_id)
    for page in scan:
        save(db, run_id, [Contact(PEOPLE[n], subscribed) for n, subscribed in page])
        counted = scan_count(db)
        assert counted is None or counted == table_count(db)
