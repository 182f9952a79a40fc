"""The audience direction as a state machine, on SQLite and PostgreSQL.

Events arrive in any order, copied, skewed, from the future or as junk; contacts subscribe and
unsubscribe in Listrak; pushes succeed, meet an outage, are refused for one contact or one
field, die half way, meet a second pusher, or are accepted by imports that never apply. After
a healthy push and scan, every current subscriber's box is the membership of their newest
plausible event; no one the subscriber scan did not see subscribed is ever written; and no
push unchecks more of a field's boxes than the mass-flip guard allows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test
from sqlalchemy import Engine, select, true

from listrak_source.audiences.push import PushContext, push_list
from listrak_source.engage.ingest import CLOCK_SKEW
from listrak_source.engage.records import PushStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.simulator.webhooks import audience_track
from listrak_source.state.schema import audience_values, members, metadata

from ..properties import example_database
from .world import LAPSED, LIST, VIP, World, make_settings

pytestmark = pytest.mark.slow

KEYS = {"vip": VIP, "lapsed": LAPSED}
GUARD = {
    "max_flip_ratio": 0.5,
    "min_flip_count": 2,
    "max_contacts_per_request": 3,
    "apply_grace": "60s",
}
FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
# Offsets from the machine's clock, in milliseconds: mostly the past, some within the skew
# Segment's clock may have, some beyond it.
OFFSETS = st.one_of(
    st.integers(-3_600_000, 0),
    st.integers(0, 600_000),
    st.sampled_from([86_400_000 * 365, None]),
)


class Killed(BaseException):
    """The process pushing dies, after Listrak took a request and before its answer is kept."""


class Dying:
    """A writer that dies after its first request reached Listrak."""

    def __init__(self, writer: Any) -> None:
        self.writer = writer

    def post_profile_fields(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> None:
        self.writer.post_profile_fields(list_id, contacts)
        raise Killed


class Racing:
    """A writer during whose first request a second process tries to push the list."""

    def __init__(self, writer: Any, second: Callable[[], Any]) -> None:
        self.writer, self.second, self.seconds = writer, second, []

    def post_profile_fields(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> None:
        if not self.seconds:
            self.seconds.append(self.second())
        self.writer.post_profile_fields(list_id, contacts)


@dataclass(frozen=True)
class Sent:
    """An event as sent, and whether it is the newest plausible one of its target."""

    body: dict[str, Any]
    target: tuple[int, str]
    rank: tuple[datetime, str]
    member: bool


class AudienceDirection(RuleBasedStateMachine):
    def __init__(self, sink: SegmentSink, db_url: str, engine: Engine) -> None:
        super().__init__()
        _empty(engine)
        self.sim = ListrakSimulator()
        self.sim.__enter__()
        self.secret = self.sim.client_secret
        self.sim.add_list(LIST, "Main")
        self.sim.add_field(LIST, VIP, "CheckBox", "VIP")
        self.sim.add_field(LIST, LAPSED, "CheckBox", "Lapsed")
        self.pool = [*self.sim.seed(LIST, 6, seed=5), "late@example.com", "Never@Example.com"]
        self.world = World(self.sim, make_settings(self.sim, sink, db_url, push=GUARD), engine)
        self.sent: list[Sent] = []
        self.newest: dict[tuple[int, str], Sent] = {}
        self.serial = 0
        self.synced: set[str] = set()
        self.sync()

    def teardown(self) -> None:
        try:
            self.settle()
        finally:
            self.sim.__exit__(None, None, None)

    # Segment

    @rule(
        items=st.lists(
            st.tuples(
                st.integers(0, 7), st.sampled_from(["vip", "lapsed"]), st.booleans(), OFFSETS
            ),
            min_size=1,
            max_size=6,
        ),
        junk=st.lists(st.one_of(st.integers(), st.text(max_size=3), st.just({"type": "track"}))),
        copies=st.lists(st.integers(0, 1000), max_size=3),
    )
    def events(self, items: list[Any], junk: list[Any], copies: list[int]) -> None:
        fresh = [self._event(*item) for item in items]
        again = [self.sent[i % len(self.sent)] for i in copies if self.sent]
        batch = fresh + again
        self.world.send(*[s.body for s in batch], *junk)
        for s in batch:
            self._believe(s)

    @rule(key=st.sampled_from(["vip", "lapsed"]), share=st.integers(3, 8))
    def audience_deleted(self, key: str, share: int) -> None:
        """Engage exits everyone (or most) of an audience at once."""
        batch = [self._event(who, key, False, 0) for who in range(share)]
        self.world.send(*[s.body for s in batch])
        for s in batch:
            self._believe(s)

    @rule(seconds=st.sampled_from([1, 30, 61, 600, 7200]))
    def advance(self, seconds: int) -> None:
        self.world.advance(seconds)

    # Listrak

    @rule(who=st.integers(0, 6))
    def subscribe(self, who: int) -> None:
        self.sim.subscribe(LIST, self.pool[who])

    @rule(who=st.integers(0, 7))
    def unsubscribe(self, who: int) -> None:
        with contextlib.suppress(Exception):
            self.sim.unsubscribe(LIST, self.pool[who])

    @rule()
    def sync(self) -> None:
        self.world.sync()
        # Subscribers as the sync saw them: a removal it holds as too large keeps them.
        self.synced = self._members()

    # Pushes

    @rule(
        trouble=st.sampled_from(
            [
                "none",
                "outage",
                "one contact",
                "one field",
                "dies",
                "second pusher",
                "unapplied",
                "token refused",
            ]
        ),
        who=st.integers(0, 7),
    )
    def push(self, trouble: str, who: int) -> None:
        before, checked = len(self.sim.bulk_requests), self._checked()
        self._trouble(trouble, who)
        try:
            result = self._push(trouble)
        except Killed:
            result = None
        finally:
            self._heal()
        if result is not None and trouble == "second pusher":
            assert result.status != PushStatus.SKIPPED
        if result is not None and trouble == "token refused":
            # Nothing spends an attempt; a push with nothing to send needs no token.
            assert result.rejected == 0
            assert result.status == PushStatus.FAILED or result.requests == 0
        self._judge(before, checked)

    def _trouble(self, trouble: str, who: int) -> None:
        faults = self.sim.faults
        if trouble == "outage":
            faults.fail_bulk_next(100, 503)
        elif trouble == "one contact":
            faults.refuse_emails = {self.pool[who].lower()}
        elif trouble == "one field":
            self.sim.remove_field(LIST, LAPSED)
        elif trouble == "unapplied":
            faults.drop_imports = True
        elif trouble == "token refused":
            self.sim.client_secret = "rotated-in-listrak"

    def _heal(self) -> None:
        self.sim.faults.reset()
        self.sim.faults.refuse_emails = set()
        self.sim.faults.drop_imports = False
        self.sim.client_secret = self.secret
        if LAPSED not in self.sim.get(LIST).field_ids:
            self.sim.add_field(LIST, LAPSED, "CheckBox", "Lapsed")

    def _push(self, trouble: str) -> Any:
        world = self.world
        with world.client() as client:
            writer: Any = client
            if trouble == "dies":
                writer = Dying(client)
            elif trouble == "second pusher":
                writer = Racing(client, self._second_push)
            ctx = PushContext(world.settings, world.db, writer, clock=world.clock)
            result = push_list(ctx, LIST)
        if isinstance(writer, Racing):
            assert all(r.status == PushStatus.SKIPPED for r in writer.seconds)
        return result

    def _second_push(self) -> Any:
        with self.world.client() as client:
            ctx = PushContext(self.world.settings, self.world.db, client, clock=self.world.clock)
            return push_list(ctx, LIST, allow_mass_flip=True)

    # What must hold

    def _judge(self, before: int, checked: Mapping[int, set[str]]) -> None:
        """Only subscribers the scan saw are written; no push unchecks more than the guard
        allows of the boxes checked when it began."""
        bodies = [r.body for r in self.sim.bulk_requests[before:] if r.status == 201]
        written = {item["emailAddress"].lower() for body in bodies for item in body}
        assert written <= self.synced, "a value went to someone not seen subscribed"
        for field_id, boxes in checked.items():
            unchecked = {
                item["emailAddress"].lower()
                for body in bodies
                for item in body
                for value in item["segmentationFieldValues"]
                if value["segmentationFieldId"] == field_id and value["value"] == "off"
            }
            allowed = max(GUARD["min_flip_count"], GUARD["max_flip_ratio"] * len(boxes))
            assert len(unchecked & boxes) <= allowed, f"field {field_id}: a mass uncheck went out"

    @rule()
    def settle(self) -> None:
        """A healthy push and scan, with every trouble gone and an operator's consent."""
        world = self.world
        self._heal()
        for _ in range(4):
            self.sync()
            world.db.audiences.revive_dead(LIST)  # what `retry` does
            before = len(self.sim.bulk_requests)
            result = world.push(allow_mass_flip=True)
            self._judge_writes(before)
            self.sim.apply_imports()
            world.advance(61)
            self.sync()
            if result.requests == 0 and world.db.audiences.backlog(LIST).pending == 0:
                break
        self._boxes_match()

    def _judge_writes(self, before: int) -> None:
        bodies = [r.body for r in self.sim.bulk_requests[before:] if r.status == 201]
        written = {item["emailAddress"].lower() for body in bodies for item in body}
        assert written <= self.synced

    def _boxes_match(self) -> None:
        for field_id in KEYS.values():
            boxes = self.world.boxes(field_id)
            for email in self.synced & self._subscribers():
                newest = self.newest.get((field_id, email))
                expected = newest.member if newest is not None else False
                assert (email in boxes) == expected, f"field {field_id}: a box is wrong"

    # The model

    def _event(self, who: int, key: str, member: bool, offset: int | None) -> Sent:
        self.serial += 1
        when = FAR_FUTURE if offset is None else self.world.now + timedelta(milliseconds=offset)
        email = self.pool[who]
        spelled = email.upper() if self.serial % 3 == 0 else email
        message_id = f"personas_{self.serial:06d}"
        body = audience_track(key, spelled, member, timestamp=when, message_id=message_id)
        return Sent(body, (KEYS[key], email.lower()), (when, message_id), member)

    def _believe(self, sent: Sent) -> None:
        """The receiver's rule, kept apart: a plausible event outranks the standing one."""
        if sent.rank[0] > self.world.now + CLOCK_SKEW:
            return
        if sent not in self.sent:
            self.sent.append(sent)
        standing = self.newest.get(sent.target)
        if standing is None or sent.rank > standing.rank:
            self.newest[sent.target] = sent

    def _subscribers(self) -> set[str]:
        with self.sim.lock:
            contacts = self.sim.get(LIST).contacts
            return {k for k, c in contacts.items() if c.subscribed}

    def _members(self) -> set[str]:
        m = members.c
        query = select(m.email_key).where(m.list_id == LIST, m.desired_subscribed == true())
        with self.world.engine.connect() as conn:
            return {key for (key,) in conn.execute(query)}

    def _checked(self) -> dict[int, set[str]]:
        """Per field, the subscribers whose box the state holds checked, or may."""
        v, m = audience_values.c, members.c
        maybe = (v.sent == true()) | (v.sent.is_(None) & v.sent_at.is_not(None))
        query = (
            select(v.field_id, v.email_key)
            .join(members, (m.list_id == v.list_id) & (m.email_key == v.email_key))
            .where(v.list_id == LIST, maybe, m.desired_subscribed == true())
        )
        out: dict[int, set[str]] = {f: set() for f in KEYS.values()}
        with self.world.engine.connect() as conn:
            for field_id, email_key in conn.execute(query):
                out[int(field_id)].add(email_key)
        return out


def _empty(engine: Engine) -> None:
    """A fresh state for each example, on the one migrated database."""
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())


def test_the_audience_direction_ends_where_the_newest_events_say(
    sink: SegmentSink, db_url: str, engine: Engine
) -> None:
    run_state_machine_as_test(
        lambda: AudienceDirection(sink, db_url, engine),
        settings=settings(max_examples=7, stateful_step_count=12, database=example_database()),
    )
