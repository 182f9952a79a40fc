"""From a scan's third page on (from its first, on a pass over the whole list), contacts
whose stored row already says what Listrak says are found by their mark and neither read
nor diffed; on a list that was empty when the scan
began, only rows the scan stored itself are read. The rule: a scan gives exactly what it
gives when every contact is read and diffed: the same changes, the same refusals, the same
rows, the same count of whom it missed."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from types import MappingProxyType

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from listrak_source.records import Contact, PageDiff, PageKeys, Stored
from listrak_source.state import Database
from listrak_source.state.schema import members
from listrak_source.subscribers.diff import diff_page

from .migrated import fresh_sqlite

LIST = 1001
FIELD = 7
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
EMAILS = ["a@x.io", "A@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "f@x.io", "g@x.io"]

contact = st.builds(
    lambda email, subscribed, uid: Contact(
        email, subscribed, fields=MappingProxyType({FIELD: uid} if uid is not None else {})
    ),
    st.sampled_from(EMAILS),
    st.booleans(),
    st.sampled_from([None, "", "u1", "u2"]),
)
pages = st.lists(st.lists(contact, max_size=6), min_size=3, max_size=6)


class Scanner:
    """One database, scanned with marks (found unchanged) or without (every row read)."""

    def __init__(self, folder: Path, name: str, *, marks: bool, field: int | None) -> None:
        engine = fresh_sqlite(folder / f"{name}.db")
        self.db = Database(engine)
        self.marks, self.field = marks, field
        self.ids = (f"m{n}" for n in itertools.count())

    def save(self, run_id: int, contacts: list[Contact]) -> PageDiff:
        def differ(stored: Mapping[str, Stored], same: Collection[str]) -> PageDiff:
            fresh = [c for c in contacts if c.key not in same]
            return diff_page(
                fresh, stored, user_id_field=self.field, run_id=run_id, new_id=self.ids.__next__
            )

        keys = PageKeys.of(contacts, user_id_field=self.field)
        if not self.marks:
            # Every row read: no marks, and no shortcut for a list that started empty.
            keys = keys._replace(marks=None)
            self.db.members._scan(LIST, run_id).fresh = False
        return self.db.members.save_page(LIST, run_id, keys, differ, NOW)

    def rows(self) -> list[tuple[object, ...]]:
        with self.db.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(members).order_by(members.c.email_key))]


@settings(max_examples=60)
@given(
    first=st.lists(st.lists(contact, max_size=5), max_size=3),
    scan=pages,
    field=st.sampled_from([None, FIELD]),
)
def test_a_scan_finds_the_same_with_marks_as_by_reading_every_row(
    first: list[list[Contact]], scan: list[list[Contact]], field: int | None
) -> None:
    with TemporaryDirectory() as tmp:
        marked = Scanner(Path(tmp), "marked", marks=True, field=field)
        read = Scanner(Path(tmp), "read", marks=False, field=field)
        for page in first:
            assert marked.save(1, page) == read.save(1, page)
        for page in scan:
            assert marked.save(2, page) == read.save(2, page)
        assert marked.rows() == read.rows()
        assert marked.db.members.count_unseen(LIST, 2) == read.db.members.count_unseen(LIST, 2)
        assert marked.db.members.unseen(LIST, 2, 100) == read.db.members.unseen(LIST, 2, 100)


def test_unchanged_contacts_after_the_second_page_are_not_read(tmp_path: Path) -> None:
    scanner = Scanner(tmp_path, "db", marks=True, field=FIELD)
    people = [
        Contact(f"p{n}@x.io", True, fields=MappingProxyType({FIELD: f"u{n}"})) for n in range(6)
    ]
    scanner.save(1, people)
    scanner.save(2, people[:1])
    scanner.save(2, people[1:2])
    scan = scanner.db.members._scans[LIST]
    assert scan.current is None  # two pages: the list was never read whole
    moved = people[3]._replace(fields=MappingProxyType({FIELD: "other"}))
    page = scanner.save(2, [people[2], moved, people[4]])
    assert [(c.key, c.user_id) for c in page.changes] == [("p3@x.io", "other")]
    assert scan.current is not None and len(scan.current) == 6
    assert scanner.db.members.count_unseen(LIST, 2) == (1, 6)  # p5
