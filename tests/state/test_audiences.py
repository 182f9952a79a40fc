"""The audience tables: one transaction per request, copies dropped, the newest event standing."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from listrak_source.engage.coalesce import fold
from listrak_source.engage.ingest import collect
from listrak_source.engage.mapping import AudienceMapping, Mappings
from listrak_source.engage.records import Answered
from listrak_source.simulator.webhooks import audience_track
from listrak_source.state import Database
from listrak_source.state.audiences import event_us, from_event_us
from listrak_source.state.schema import audience_counters, audience_inbox, audience_values

MAPPINGS = Mappings([AudienceMapping("vip", 1, 10), AudienceMapping("lapsed", 1, 11)])
T0 = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
NOW = datetime(2024, 5, 7, tzinfo=UTC)


def ev(email: str, member: bool, seconds: float, mid: str, key: str = "vip") -> dict[str, Any]:
    when = T0 + timedelta(seconds=seconds)
    return audience_track(key, email, member, timestamp=when, message_id=mid)


def commit(db: Database, *events: object) -> Any:
    return db.audiences.commit(collect(list(events), MAPPINGS), NOW)


def desired(engine: Engine) -> dict[tuple[int, str], tuple[bool, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                audience_values.c.field_id,
                audience_values.c.email_key,
                audience_values.c.desired,
                audience_values.c.event_id,
            )
        )
        return {(f, k): (bool(d), m) for f, k, d, m in rows}


def test_copies_are_counted_and_only_a_newer_event_replaces(engine: Engine) -> None:
    db = Database(engine)
    first = commit(db, ev("A@x.com", True, 10, "m1"), ev("a@x.com", True, 10, "m1"), {"junk": 1})
    assert (first.received, first.duplicates, first.recorded) == (3, 1, 1)
    assert first.ignored == {"not_a_membership_event": 1}
    again = commit(db, ev("a@x.com", True, 10, "m1"), ev("a@x.com", False, 5, "m0"))
    assert (again.duplicates, again.superseded, again.recorded) == (1, 1, 0)
    newer = commit(db, ev("a@x.com", False, 11, "m2"))
    assert newer.recorded == 1
    assert desired(engine) == {(10, "a@x.com"): (False, "m2")}
    assert db.audience_reports.counters() == {
        "received": 6,
        "duplicates": 2,
        "superseded": 1,
        "recorded": 2,
        "ignored:not_a_membership_event": 1,
    }


def test_equal_timestamps_are_ordered_by_message_id_in_bytes(engine: Engine) -> None:
    db = Database(engine)
    # "Z" sorts before "a" in bytes but after it in most locales' collations.
    commit(db, ev("a@x.com", True, 10, "personas_a"))
    commit(db, ev("a@x.com", False, 10, "personas_Z"))
    assert desired(engine)[(10, "a@x.com")] == (True, "personas_a")
    commit(db, ev("b@x.com", False, 10, "personas_Zb"))
    commit(db, ev("b@x.com", True, 10, "personas_ab"))
    assert desired(engine)[(10, "b@x.com")] == (True, "personas_ab")


def test_any_order_and_any_batching_end_in_the_same_values(engine: Engine) -> None:
    rng = random.Random(11)
    stream = [
        ev(f"u{rng.randrange(6)}@x.com", rng.random() < 0.5, rng.randrange(8), f"m{i:03d}", key)
        for i, key in zip(range(60), itertools.cycle(["vip", "lapsed"]), strict=False)
    ]
    # The pure fold, property-tested on its own, is the oracle for what the store keeps.
    newest = fold(collect(stream, MAPPINGS).memberships)
    want = {
        (t.field_id, t.email_key): (m.membership.member, m.membership.message_id)
        for t, m in newest.items()
    }
    for round_no in range(3):
        shuffled = stream + rng.sample(stream, 20)  # copies too
        rng.shuffle(shuffled)
        with engine.begin() as conn:
            conn.execute(audience_values.delete())
            conn.execute(audience_inbox.delete())
        db = Database(engine)
        size = [1, 7, 1000][round_no]
        for start in range(0, len(shuffled), size):
            commit(db, *shuffled[start : start + size])
        assert desired(engine) == want


def test_mark_sent_keeps_a_value_pending_when_desired_moved_on(engine: Engine) -> None:
    db = Database(engine)
    commit(db, ev("a@x.com", True, 1, "m1"))
    commit(db, ev("a@x.com", False, 2, "m2"))  # arrives while True is in flight
    db.audiences.mark_sent(1, [Answered(10, "a@x.com", True, 0)], NOW)
    with engine.connect() as conn:
        row = conn.execute(select(audience_values)).mappings().one()
    assert (row["sent"], row["desired"], row["pending"]) == (True, False, True)
    db.audiences.mark_sent(1, [Answered(10, "a@x.com", False, 0)], NOW)
    with engine.connect() as conn:
        assert conn.execute(select(audience_values.c.pending)).scalar() is False


def test_a_failed_commit_keeps_nothing(engine: Engine) -> None:
    db = Database(engine)
    audience_counters.drop(engine)  # the last statement of the commit will fail
    with pytest.raises(DBAPIError):
        commit(db, ev("a@x.com", True, 1, "m1"))
    audience_counters.create(engine)
    assert desired(engine) == {}
    assert commit(db, ev("a@x.com", True, 1, "m1")).recorded == 1, "the retry is not a copy"


def test_event_instants_round_trip_to_the_microsecond() -> None:
    moment = datetime(2024, 5, 6, 9, 30, 22, 829_123, tzinfo=UTC)
    assert from_event_us(event_us(moment)) == moment
    assert event_us(moment + timedelta(microseconds=1)) == event_us(moment) + 1


def test_pruning_forgets_only_old_message_ids(engine: Engine) -> None:
    db = Database(engine)
    commit(db, ev("a@x.com", True, 1, "m1"))
    assert db.audiences.prune_inbox(NOW) == 0
    assert db.audiences.prune_inbox(NOW + timedelta(seconds=1)) == 1
    assert commit(db, ev("a@x.com", True, 1, "m1")).superseded == 1, "a late copy still loses"


def test_a_crash_between_request_and_answer_leaves_the_value_to_send_again(
    engine: Engine,
) -> None:
    db = Database(engine)
    commit(db, ev("a@x.com", True, 1, "m1"))
    db.audiences.mark_sent(1, [Answered(10, "a@x.com", True, 0)], NOW)
    commit(db, ev("a@x.com", False, 2, "m2"))
    db.audiences.mark_sending(1, [Answered(10, "a@x.com", False, 0)], NOW)
    # The worker dies here: Listrak may hold "off" or still "on". Then the person re-enters.
    commit(db, ev("a@x.com", True, 3, "m3"))
    with engine.connect() as conn:
        row = conn.execute(select(audience_values)).mappings().one()
    assert (row["desired"], row["sent"], row["pending"]) == (True, None, True)
