"""The activity ledger on both backends: a fact recorded once, sent once, counted by name."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from listrak_source.records import RetryPolicy
from listrak_source.state import Database
from listrak_source.tracking.records import ListPass, NewEvent, Seen, StoredMessage

LIST, MSG = 1001, 501
NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=2, base=timedelta(minutes=1), cap=timedelta(minutes=3))


def event(n: int, name: str = "Email Opened") -> NewEvent:
    return NewEvent(f"id-{n:03d}", f"fact-{n}", name, f"P{n}@x.io", NOW, {"email_id": "501"})


@pytest.fixture
def db(engine: Engine) -> Database:
    return Database(engine)


def test_a_fact_is_recorded_once_with_its_row(db: Database) -> None:
    rows = {"p1@x.io": Seen("2026-03-01T09:00:00", opened=True, order_total=12.5)}
    assert len(db.activity.record(LIST, MSG, rows, [event(1), event(1)], NOW)) == 1
    assert len(db.activity.record(LIST, MSG, rows, [event(1), event(2)], NOW)) == 1
    assert db.activity.seen(LIST, MSG, ["p1@x.io", "p9@x.io"]) == rows
    pending = db.activity.pending(LIST, NOW)
    assert [(e.message_id, attempts) for e, attempts in pending] == [("id-001", 0), ("id-002", 0)]
    assert pending[0][0].email == "P1@x.io" and pending[0][0].properties == {"email_id": "501"}


def test_only_what_segment_accepted_counts_as_sent(db: Database) -> None:
    db.activity.record(LIST, MSG, {}, [event(n) for n in range(4)], NOW)
    db.activity.record(LIST, MSG, {}, [event(9, "Email Bounced")], NOW)
    assert db.activity.mark_sent(LIST, ["id-000", "id-001"]) == 2
    db.activity.mark_rejected(LIST, [("id-002", 1, "400 bad")], NOW, POLICY)
    db.activity.note_waiting(LIST, NOW, "outage: Segment answered 503")
    tally = db.activity.tally(LIST)
    assert (tally["Email Opened"].sent, tally["Email Opened"].dead) == (2, 1)
    assert tally["Email Opened"].pending == 1 and tally["Email Bounced"].pending == 1
    assert [e.message_id for e, _ in db.activity.pending(LIST, NOW)] == ["id-003", "id-009"]
    assert db.activity.revive_dead(LIST) == 1
    assert db.activity.backlog(LIST) == (3, 0)
    recent = db.activity.recent("p2@x.io")
    assert recent[0]["state"] == "pending" and recent[0]["event"] == "Email Opened"


def test_a_baseline_records_facts_as_sent(db: Database) -> None:
    db.activity.record(LIST, MSG, {}, [event(1)], NOW, sent=True)
    assert db.activity.pending(LIST, NOW) == []
    assert db.activity.record(LIST, MSG, {}, [event(1)], NOW) == []


def test_messages_and_passes(db: Database) -> None:
    message = StoredMessage(MSG, "2026-03-01T09:00:00", NOW, {"email_id": "501"})
    db.activity.save_message(LIST, message)
    db.activity.save_message(LIST, message)
    db.activity.message_read(LIST, MSG, read_at=None, clicks_mark="2026-03-02T10:00:00")
    (stored,) = db.activity.messages(LIST).values()
    assert stored.deferred and stored.clicks_mark == "2026-03-02T10:00:00"
    db.activity.message_read(LIST, MSG, read_at=NOW, clicks_mark=None, backfilled=True)
    (stored,) = db.activity.messages(LIST).values()
    assert not stored.deferred and stored.backfilled and stored.read_at == NOW
    assert db.activity.list_pass(LIST) == ListPass(LIST)
    done = ListPass(LIST, NOW, "ok", None, 3, 0, "2026-03-01T00:00:00")
    db.activity.save_pass(done)
    db.activity.save_pass(done)
    assert db.activity.list_pass(LIST) == done
