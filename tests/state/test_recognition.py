"""From a scan's third page on (from its first, on a pass over the whole list), a contact
sent as the same bytes as when its row was written is recognized by their digest, and
neither decoded nor diffed. The rule: a scan gives
exactly what it gives when every contact is decoded: the same changes, the same refusals,
the same rows, the same count of whom it missed, whatever the pages hold and however the
list's user-id field changes between scans."""

from __future__ import annotations

import functools
import itertools
import threading
from collections import Counter
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from listrak_source.listrak.client import ListrakClient
from listrak_source.listrak.pieces import split_page
from listrak_source.records import Page, PageDiff, PageKeys, RawPage, Stored
from listrak_source.state import Database
from listrak_source.state.ahead import Cancelled
from listrak_source.state.schema import members
from listrak_source.subscribers.diff import diff_page
from listrak_source.subscribers.scan import _drop_oversize, recognized_page

from ..properties import example_database
from .migrated import fresh_sqlite
from .test_subscribed_count import scan_count, table_count

LIST = 1001
FIELD = 7
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
EMAILS = ["a@x.io", "A@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "not an address"]

# A contact as Listrak sends it: the date changes its bytes, not what it means.
contact = st.fixed_dictionaries(
    {
        "emailAddress": st.sampled_from(EMAILS),
        "subscriptionState": st.sampled_from(["Subscribed", "Unsubscribed", "Pending"]),
        "subscribeDate": st.sampled_from(["2026-01-01T00:00:00", "2026-02-01T00:00:00"]),
        "segmentationFieldValues": st.lists(
            st.fixed_dictionaries(
                {
                    "segmentationFieldId": st.sampled_from([FIELD, 8]),
                    "value": st.sampled_from(["u1", "u2", ""]),
                }
            ),
            max_size=2,
        ),
    }
)
# Contacts are drawn from a few versions, so later scans meet the bytes of earlier ones.
versions = st.lists(contact, min_size=1, max_size=8)
pages = st.lists(st.lists(st.integers(0, 7), max_size=5), min_size=1, max_size=7)


def raw_page(contacts: list[dict[str, Any]]) -> RawPage:
    content = orjson.dumps({"status": 200, "nextPageCursor": None, "data": contacts})
    pieces = split_page(content)
    return RawPage(contacts if pieces is None else [], None, pieces, content)


class Scanner:
    """One database; scans recognize contacts by their digests, or decode every one.

    `ahead`: each run reads the list's rows on a thread of its own from its start, as a
    pass over the whole list does; "early" lets that read finish before the first page is
    stored, as a pass over the whole list takes it at its first page; "late" holds it
    until two pages have been, as a pass that learns the list's mark takes it at its third.
    """

    def __init__(self, db: Database, *, recognizing: bool, ahead: str | None = None) -> None:
        self.db = db
        self.recognizing = recognizing
        self.ids = (f"m{n}" for n in itertools.count())
        self.ahead = ahead
        self.pages: Counter[int] = Counter()
        self.gate = threading.Event()
        # The rule holds on any database: SQLite is told to read ahead, as PostgreSQL does.
        db.members.reads_ahead = ahead is not None
        if ahead == "late":
            read = db.members._read_current
            db.members._read_current = functools.partial(_gated, read, self.gate)  # type: ignore[method-assign]

    @classmethod
    def on_sqlite(
        cls, folder: Path, name: str, *, recognizing: bool, ahead: str | None = None
    ) -> Scanner:
        """A scanner over a fresh SQLite file of its own in `folder`."""
        db = Database(fresh_sqlite(folder / f"{name}.db"))
        return cls(db, recognizing=recognizing, ahead=ahead)

    def _read_ahead(self, run_id: int, field: int | None) -> None:
        if self.ahead is None or self.pages[run_id]:
            return
        self.gate.clear()
        members = self.db.members
        if self.ahead == "early":
            # A pass over the whole list: its first page takes the read, so no page of it
            # is stored before the read ends.
            members.whole_pass(LIST, run_id)
        members.read_ahead(LIST, run_id, user_ids=field is not None, digests=self.recognizing)
        ahead = members._scans[LIST].ahead
        if ahead is not None and self.ahead == "early":
            ahead.result()

    def save(
        self,
        run_id: int,
        contacts: list[dict[str, Any]],
        field: int | None,
        *,
        decoded: bool = False,
        fail: bool = False,
    ) -> PageDiff:
        """Store a page; `decoded`: prepared before the scan looked contacts up, so every
        contact of it is decoded, with its digest; `fail`: its diff raises."""
        self._read_ahead(run_id, field)
        raw = raw_page(contacts)
        page, recognized = self._take(run_id, raw, field, decoded=decoded)
        self.recognized = len(recognized)

        def differ(stored: Mapping[str, Stored], same: Collection[str]) -> PageDiff:
            if fail:
                raise RuntimeError("the page fails to store")
            fresh = [c for c in page.contacts if c.key not in same]
            diff = diff_page(
                fresh, stored, user_id_field=field, run_id=run_id, new_id=self.ids.__next__
            )
            diff.rejects[:0] = page.rejects
            _drop_oversize(diff, "trait", ())
            return diff

        keys = PageKeys.of(page.contacts, page.rejects, user_id_field=field)
        try:
            return self.db.members.save_page(
                LIST, run_id, keys, differ, NOW, recognizing=self.recognizing
            )
        finally:
            self.pages[run_id] += 1
            if self.pages[run_id] >= 2:
                self.gate.set()

    def _take(
        self, run_id: int, raw: RawPage, field: int | None, *, decoded: bool
    ) -> tuple[Page, list[int]]:
        if not self.recognizing or raw.pieces is None:
            return ListrakClient.parse(raw), []
        ListrakClient.digest(raw, f"user id field {field}")
        assert raw.digests is not None
        if decoded:
            page = ListrakClient.parse_unknown(raw, [0] * raw.size)
            return (ListrakClient.parse(raw) if page is None else page), []
        known = self.db.members.recognize(LIST, run_id, raw.digests, user_ids=field is not None)
        codes = functools.partial(self.db.members.codes_of, LIST, run_id)
        take = functools.partial(self.db.members.take, LIST, run_id)
        return recognized_page(ListrakClient, raw, known, codes, take)

    def rows(self) -> list[tuple[object, ...]]:
        columns = [c for c in members.c if c.name != "digest"]
        with self.db.engine.connect() as conn:
            query = select(*columns).order_by(members.c.email_key)
            return [tuple(r) for r in conn.execute(query)]


def _gated(read: Callable[..., Any], gate: threading.Event, *args: Any, **kwargs: Any) -> Any:
    """The read, once the gate opens; given up when the scan no longer wants it."""
    cancelled = kwargs.get("cancelled")
    while not gate.wait(0.01):
        if cancelled is not None and cancelled.is_set():
            raise Cancelled("not wanted")
    return read(*args, **kwargs)


def _plain(diff: PageDiff) -> tuple[object, ...]:
    return ([c._replace(digest=None) for c in diff.changes], diff.rejects)


def _version(
    email: str, state: str = "Subscribed", date: int = 1, uid: str = "u1"
) -> dict[str, Any]:
    return {
        "emailAddress": email,
        "subscriptionState": state,
        "subscribeDate": f"2026-0{date}-01T00:00:00",
        "segmentationFieldValues": [{"segmentationFieldId": FIELD, "value": uid}],
    }


A, B, C = _version("a@x.io"), _version("b@x.io"), _version("c@x.io")
MOVED = _version("a@x.io", uid="u2")
OUT, LATER, HUGE = (
    _version("a@x.io", "Unsubscribed"),
    _version("a@x.io", date=2),
    _version("a@x.io", uid="u" * 40_000),
)


@settings(max_examples=60, database=example_database())
# Unsubscribed in this scan after the digests were read, then sent as when it was subscribed.
@example(
    versions=[A, OUT, B, C],
    scans=[([[0]], FIELD), ([[2], [3], [1], [0]], FIELD)],
    sweep=False,
    ahead="early",
)
# Twice in one page, as the same bytes.
@example(
    versions=[A, B, C],
    scans=[([[0]], FIELD), ([[1], [2], [0, 0]], FIELD)],
    sweep=False,
    ahead="early",
)
# Twice in one scan, as the same bytes on two pages.
@example(
    versions=[A, B, C],
    scans=[([[0]], FIELD), ([[1], [2], [0], [0]], FIELD)],
    sweep=False,
    ahead="early",
)
# Twice in one page, the first time with another userId.
@example(
    versions=[A, MOVED, B, C],
    scans=[([[0]], FIELD), ([[2], [3], [1, 0]], FIELD)],
    sweep=False,
    ahead="early",
)
# Twice in one page, in other bytes.
@example(
    versions=[A, LATER, B, C],
    scans=[([[0]], FIELD), ([[2], [3], [0, 1]], FIELD)],
    sweep=False,
    ahead="early",
)
@example(
    versions=[A, LATER, B, C],
    scans=[([[0]], FIELD), ([[2], [3], [1, 0]], FIELD)],
    sweep=False,
    ahead="early",
)
# A change refused (its message would be too big) leaves the row as it was.
@example(
    versions=[A, HUGE, B, C],
    scans=[([[0]], FIELD), ([[1]], FIELD), ([[2], [3], [1]], FIELD)],
    sweep=False,
    ahead="early",
)
# The list's user-id field changes under bytes that do not.
@example(
    versions=[A, B, C],
    scans=[([[0]], FIELD), ([[1], [2], [0]], 8)],
    sweep=True,
    ahead="early",
)
# The read taken at the third page, after two pages were stored.
@example(
    versions=[A, B, C],
    scans=[([[0, 1]], FIELD), ([[0], [1], [2], [0]], FIELD)],
    sweep=True,
    ahead="late",
)
@given(
    versions=versions,
    scans=st.lists(st.tuples(pages, st.sampled_from([None, FIELD, 8])), min_size=1, max_size=4),
    sweep=st.booleans(),
    ahead=st.sampled_from([None, "early", "late"]),
)
def test_a_scan_finds_the_same_recognizing_contacts_as_decoding_every_one(
    versions: list[dict[str, Any]],
    scans: list[tuple[list[list[int]], int | None]],
    sweep: bool,
    ahead: str | None,
) -> None:
    """Whenever the list's rows are read: before the scan's first page is stored, or
    after its first two."""
    with TemporaryDirectory() as tmp:
        fast = Scanner.on_sqlite(Path(tmp), "fast", recognizing=True, ahead=ahead)
        slow = Scanner.on_sqlite(Path(tmp), "slow", recognizing=False)
        for run_id, (pages_, field) in enumerate(scans, start=1):
            for picks in pages_:
                contacts = [versions[i % len(versions)] for i in picks]
                assert _plain(fast.save(run_id, contacts, field)) == _plain(
                    slow.save(run_id, contacts, field)
                )
                for scanner in (fast, slow):
                    assert scan_count(scanner.db) in (None, table_count(scanner.db))
            assert fast.db.members.count_unseen(LIST, run_id) == slow.db.members.count_unseen(
                LIST, run_id
            )
            assert fast.db.members.unseen(LIST, run_id, 100) == slow.db.members.unseen(
                LIST, run_id, 100
            )
            if sweep:
                for scanner in (fast, slow):
                    scanner.db.members.remove_unseen(LIST, run_id, NOW, lambda: "gone")
            assert fast.rows() == slow.rows()
            for scanner in (fast, slow):
                scanner.db.members.end_scan(LIST)


def test_a_scan_that_recognizes_nothing_finds_every_unchanged_row_by_its_mark(
    tmp_path: Path,
) -> None:
    """An audience list's scan decodes every contact (its read-back judges them all): rows
    that carry a digest are then found unchanged by their marks, like the others."""
    scanner = Scanner.on_sqlite(tmp_path, "db", recognizing=True)
    people = [_version(f"p{n}@x.io") for n in range(6)]
    scanner.save(1, people, FIELD)
    with scanner.db.engine.connect() as conn:
        digested = conn.execute(select(members.c.digest).where(members.c.digest.is_not(None)))
        assert len(digested.all()) == 6
    scanner.recognizing = False
    pages = [scanner.save(2, page, FIELD) for page in ([people[0]], [people[1]], people[2:])]
    scan = scanner.db.members._scans[LIST]
    assert scan.known is None and scan.current is not None and len(scan.current) == 6
    assert all(not page.changes and not page.rejects for page in pages)


def test_a_scan_whose_first_pages_were_decoded_recognizes_the_rest(tmp_path: Path) -> None:
    """Pages the reader prepared before the scan could look contacts up are decoded whole;
    the third page's marks are then read as the recognizing scan reads them, and the next
    pages are recognized, with no row written."""
    scanner = Scanner.on_sqlite(tmp_path, "db", recognizing=True)
    people = [_version(f"p{n}@x.io") for n in range(8)]
    scanner.save(1, people, FIELD)
    scanner.db.members.end_scan(LIST)
    for page in ([people[0]], [people[1]], [people[2]]):
        assert not scanner.save(2, page, FIELD, decoded=True).changes
    assert not scanner.save(2, people[3:], FIELD).changes
    assert scanner.recognized == 5
    assert scanner.db.members.count_unseen(LIST, 2) == (0, 0)


def test_after_the_planned_passes_pages_are_decoded_and_give_the_same_result(
    tmp_path: Path,
) -> None:
    """The digest table goes once the planned passes are over: a later page of the run
    recognizes nothing, is decoded whole, and still writes nothing for unchanged contacts
    and counts them as seen."""
    scanner = Scanner.on_sqlite(tmp_path, "db", recognizing=True)
    people = [_version(f"p{n}@x.io") for n in range(8)]
    scanner.save(1, people, FIELD)
    scanner.db.members.end_scan(LIST)
    for page in ([people[0]], [people[1]], [people[2]], [people[3]]):
        assert not scanner.save(2, page, FIELD).changes
    assert scanner.recognized == 1  # the fourth page's one contact
    scanner.db.members.forget_digests(LIST)
    assert not scanner.save(2, people[4:], FIELD).changes
    assert scanner.recognized == 0
    assert scanner.db.members.count_unseen(LIST, 2) == (0, 0)


def test_a_page_that_fails_after_recognizing_leaves_the_count_as_the_rows_named(
    engine: Engine,
) -> None:
    """Recognized contacts count as seen when the scan takes them, before their page's
    transaction; when that transaction fails, they are seen all the same, and the count
    of the unseen agrees with the rows the sweep would name."""
    scanner = Scanner(Database(engine), recognizing=True)
    db = scanner.db
    people = [_version(f"p{n}@x.io") for n in range(6)]
    scanner.save(1, people, FIELD)
    db.members.end_scan(LIST)
    scanner.save(2, people[:1], FIELD)
    scanner.save(2, people[1:2], FIELD)
    with pytest.raises(RuntimeError):
        scanner.save(2, people[2:4], FIELD, fail=True)
    taken_again = db.members.take(LIST, 2, db.members.codes_of(LIST, 2, ["p2@x.io", "p3@x.io"]))
    assert taken_again == [False, False]  # recognized, and taken, before the failure
    named = db.members.unseen(LIST, 2, 100)
    assert named == [("p4@x.io", "p4@x.io"), ("p5@x.io", "p5@x.io")]
    assert db.members.count_unseen(LIST, 2) == (2, 6)
