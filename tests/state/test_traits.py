"""Old traits a rename still removes are forgotten once every message of the list is
delivered, and a list that has none is not searched for messages at all."""

from __future__ import annotations

import itertools

from sqlalchemy import Engine

from listrak_source.records import Contact
from listrak_source.state import Database

from .statements import recorded
from .test_members import LIST, NOW, accept_all, save


def test_old_traits_go_once_nothing_is_left_to_deliver_and_none_are_looked_for_without(
    engine: Engine,
) -> None:
    db = Database(engine)
    db.traits.adopt(LIST, "old")
    save(db, 1, [Contact("a@x.io", True), Contact("b@x.io", True)])
    accept_all(db)
    with recorded(engine, "UPDATE") as updates:
        db.traits.retire_done(LIST)
    assert updates == []  # no old trait: nothing looked for
    ids = (f"r{n}" for n in itertools.count())
    db.traits.rename(LIST, "new", NOW, ids.__next__)
    db.traits.retire_done(LIST)
    assert db.traits.recorded(LIST) == ("new", ("old",))  # its removals are still due
    accept_all(db)
    db.traits.retire_done(LIST)
    assert db.traits.recorded(LIST) == ("new", ())
