"""A contact recognized by its digest counts as seen by the scan: the key hash the digest
index answers is the one the scan's seen set holds, however Python's hash is seeded; and
the index answers as a dict would."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from listrak_source.records import Contact, PageDiff, PageKeys, Stored
from listrak_source.state import Database, make_engine, upgrade
from listrak_source.subscribers.diff import diff_page

LIST = 1001
FIELD = 7
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
EMAILS = ["a@x.io", "b@x.io", "c@x.io", "d@x.io"]


def _contact(n: int) -> Contact:
    fields = MappingProxyType({FIELD: f"u{n}"})
    return Contact(EMAILS[n], True, fields=fields, digest=1000 + n)


def _save(db: Database, run_id: int, contacts: list[Contact]) -> None:
    ids = (f"m{n}" for n in itertools.count())

    def differ(stored: Mapping[str, Stored], same: Collection[str]) -> PageDiff:
        fresh = [c for c in contacts if c.key not in same]
        return diff_page(fresh, stored, user_id_field=FIELD, run_id=run_id, new_id=ids.__next__)

    keys = PageKeys.of(contacts, user_id_field=FIELD)
    db.members.save_page(LIST, run_id, keys, differ, NOW)


@pytest.mark.parametrize("hash_seed", [None, "0"])
def test_a_recognized_contact_is_one_the_scan_has_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hash_seed: str | None
) -> None:
    if hash_seed is None:
        monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    else:
        monkeypatch.setenv("PYTHONHASHSEED", hash_seed)
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(engine)
    db = Database(engine)
    for n in range(4):  # the first run stores each contact with its digest, a page each
        _save(db, 1, [_contact(n)])
    db.members.end_scan(LIST)
    _save(db, 2, [_contact(0)])
    _save(db, 2, [_contact(1)])
    # From the third page on the digests are looked up: the contacts are recognized.
    known = db.members.recognize(LIST, 2, [1002, 1003], user_ids=True)
    assert all(known)
    assert known == db.members.codes_of(LIST, 2, [EMAILS[2], EMAILS[3]])
    assert db.members.take(LIST, 2, known) == [True, True]
    _save(db, 2, [])
    assert db.members.unseen(LIST, 2, 10) == []
    # Seen now, each is found so when served again.
    assert db.members.take(LIST, 2, known) == [False, False]
    engine.dispose()
