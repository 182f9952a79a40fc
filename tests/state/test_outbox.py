"""The outbox with `now` handed in: what is due, what a refusal costs, what an outage does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from listrak_source.records import RetryPolicy
from listrak_source.state import Database
from listrak_source.state.rows import CHUNK, listed_ids
from listrak_source.state.schema import members

LIST = 1001
NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base=timedelta(minutes=1), cap=timedelta(minutes=3))


@pytest.fixture
def db(engine: Engine) -> Database:
    rows = [
        {
            "list_id": LIST,
            "email_key": f"c{n}@x.io",
            "email": f"c{n}@x.io",
            "desired_subscribed": n % 2 == 0,
            "message_id": f"m-{n}",
            "detected_at": NOW,
            "attempts": 0,
            "dead": False,
        }
        for n in range(6)
    ]
    with engine.begin() as conn:
        conn.execute(members.insert(), rows)
    return Database(engine)


def due(db: Database, now: datetime = NOW) -> list[str]:
    return [row.message_id for row, _ in db.outbox.pending(LIST, now)]


def row(db: Database, message_id: str) -> dict[str, object]:
    with db.engine.connect() as conn:
        found = conn.execute(select(members).where(members.c.message_id == message_id))
        return dict(found.mappings().one())


def test_pending_pages_by_message_id(db: Database) -> None:
    assert due(db) == [f"m-{n}" for n in range(6)]
    assert [r.message_id for r, _ in db.outbox.pending(LIST, NOW, after="m-3")] == ["m-4", "m-5"]
    assert [r.message_id for r, _ in db.outbox.pending(LIST, NOW, limit=2)] == ["m-0", "m-1"]


def test_a_refusal_backs_off_doubles_and_dies_at_max_attempts(db: Database) -> None:
    assert db.outbox.mark_rejected(LIST, [("m-1", 0, "Segment answered 400")], NOW, POLICY) == 0
    assert "m-1" not in due(db) and "m-1" in due(db, NOW + timedelta(minutes=1))
    refused = row(db, "m-1")
    assert refused["attempts"] == 1 and refused["last_error"] == "rejected: Segment answered 400"
    db.outbox.mark_rejected(LIST, [("m-1", 1, "again")], NOW, POLICY)
    assert "m-1" not in due(db, NOW + timedelta(minutes=1))
    assert "m-1" in due(db, NOW + timedelta(minutes=2))
    assert db.outbox.mark_rejected(LIST, [("m-1", 2, "again")], NOW, POLICY) == 1
    assert "m-1" not in due(db, NOW + timedelta(days=30))  # dead waits for a person
    assert db.outbox.revive_dead(LIST) == 1 and "m-1" in due(db)


def test_an_outage_labels_what_is_due_and_spends_nothing(db: Database) -> None:
    db.outbox.mark_rejected(LIST, [("m-2", 0, "bad")], NOW, POLICY)
    assert db.outbox.note_waiting(LIST, NOW, "outage: Segment answered 503") == 5
    assert due(db) == ["m-0", "m-1", "m-3", "m-4", "m-5"]  # due on the very next run
    assert row(db, "m-0")["attempts"] == 0
    assert row(db, "m-2")["last_error"] == "rejected: bad"  # its own reason stays
    waiting = {w.reason: (w.rows, w.next_attempt_at) for w in db.runs.waiting(LIST)}
    assert waiting == {
        "outage: Segment answered 503": (5, None),
        "rejected: bad": (1, NOW + timedelta(minutes=1)),
    }


def test_sent_only_where_the_row_still_carries_the_accepted_id(db: Database) -> None:
    assert db.outbox.mark_sent(LIST, ["m-0", "m-1", "stale-id"]) == 2
    sent = row_by_key(db, "c0@x.io")
    assert sent["message_id"] is None and sent["sent_subscribed"] is True
    assert due(db) == ["m-2", "m-3", "m-4", "m-5"]


def test_baseline_adopts_what_segment_never_heard_of_from_us(db: Database) -> None:
    assert db.outbox.adopt_all(LIST) == 6 and due(db) == []
    assert db.runs.backlog(LIST) == (0, 0)


def test_baseline_never_adopts_a_change_segment_may_be_owed(db: Database) -> None:
    with db.engine.begin() as conn:
        accepted = members.update().where(members.c.email_key.in_(["c1@x.io", "c2@x.io"]))
        conn.execute(accepted.values(sent_subscribed=True))  # a removal, a userId change
    db.outbox.mark_posted(LIST, ["m-3"])  # posted, no answer: Segment may hold it
    assert db.outbox.adopt_all(LIST) == 3
    assert due(db) == ["m-1", "m-2", "m-3"]
    assert row(db, "m-3")["in_doubt"] is True and row(db, "m-1")["in_doubt"] is False


def row_by_key(db: Database, key: str) -> dict[str, object]:
    with db.engine.connect() as conn:
        found = conn.execute(select(members).where(members.c.email_key == key))
        return dict(found.mappings().one())


def test_sent_marks_exactly_the_rows_of_the_ids_given_across_chunks(db: Database) -> None:
    # Ids no row carries, around and between the real ones, over more than one statement.
    given = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(CHUNK + 10)]
    given[3:3] = ["m-0", "m-2"]
    given[CHUNK + 4 : CHUNK + 4] = ["m-5"]
    assert db.outbox.mark_sent(LIST, given) == 3
    assert due(db) == ["m-1", "m-3", "m-4"]
    assert row(db, "m-3")["sent_subscribed"] is None


def test_a_message_id_holding_a_comma_is_refused_not_split(engine: Engine) -> None:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            with pytest.raises(ValueError, match="comma"):
                listed_ids(conn, ["m-1", "m-2,m-3"])
            assert listed_ids(conn, ["m-1", "m-2"]) == "m-1,m-2"
        else:
            assert listed_ids(conn, ["m-1", "m-2,m-3"]) == '["m-1","m-2,m-3"]'
