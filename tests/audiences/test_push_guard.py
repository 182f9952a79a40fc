"""The push under hostile conditions: the mass-flip guard on what is really sent, over time;
a field Listrak refuses; two pushers; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from sqlalchemy import Engine

from listrak_source.audiences.push import PUSH_LOCK, PushContext, push_list
from listrak_source.engage.records import PushStatus
from listrak_source.errors import EXIT_CONFIG, ListBusyError
from listrak_source.simulator import ListrakSimulator, SegmentSink

from .world import LAPSED, LIST, VIP, World, event, make_settings, prepare_list

GUARD = {"max_flip_ratio": 0.5, "min_flip_count": 3, "max_contacts_per_request": 4}


@pytest.fixture
def emails(sim: ListrakSimulator) -> list[str]:
    return prepare_list(sim, subscribers=20)


@pytest.fixture
def world(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, engine: Engine, emails: list[str]
) -> Iterator[World]:
    world = World(sim, make_settings(sim, sink, db_url, push=GUARD), engine)
    world.sync()
    yield world


def keys(emails: Sequence[str]) -> set[str]:
    return {e.lower() for e in emails}


class Hooked:
    """The real client, with something that happens while a request is on its way."""

    def __init__(self, writer: Any, hook: Callable[[int], None]) -> None:
        self.writer, self.hook, self.calls = writer, hook, 0

    def post_profile_fields(self, list_id: int, contacts: Sequence[Mapping[str, Any]]) -> None:
        self.calls += 1
        self.hook(self.calls)
        self.writer.post_profile_fields(list_id, contacts)


def hooked_push(world: World, hook: Callable[[int], None]) -> Any:
    with world.client() as client:
        ctx = PushContext(world.settings, world.db, Hooked(client, hook), clock=world.clock)
        return push_list(ctx, LIST)


def test_exits_of_people_no_longer_subscribed_do_not_hold_the_field(
    world: World, emails: list[str]
) -> None:
    world.send(*[event(e, True) for e in emails[:10]])
    assert world.push().status == PushStatus.OK
    for e in emails[:8]:
        world.sim.unsubscribe(LIST, e)
    world.sync()
    world.send(*[event(e, False, 60) for e in emails[:8]])  # they leave the audience too
    world.send(event(emails[15], True, 60))
    result = world.push()
    assert (result.status, result.held_fields) == (PushStatus.OK, [])
    assert world.boxes() == keys(emails[:10]) | {emails[15].lower()}
    assert result.backlog.held == 8, "the exits wait for them to subscribe again"
    world.send(event(emails[16], True, 90))
    assert world.push().status == PushStatus.OK


def test_exits_arriving_while_a_push_sends_are_guarded(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails[8:]])
    world.push()
    world.send(*[event(e, True, 60) for e in emails[:4]])

    def exits_meanwhile(call: int) -> None:
        if call == 1:  # the whole audience exits while the push is under way
            world.send(*[event(e, False, 90) for e in emails[8:]])

    result = hooked_push(world, exits_meanwhile)
    assert (result.status, result.held_fields) == (PushStatus.HELD, [VIP])
    assert world.boxes() >= keys(emails[:4])
    assert len(world.boxes() & keys(emails[8:])) >= 6, "at most max_flip_ratio of 12 went"
    result = world.push(allow_mass_flip=True)
    assert result.status == PushStatus.OK
    assert world.boxes() == keys(emails[:4])


def test_a_mass_exit_trickling_in_over_many_pushes_is_held(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails])
    world.push()
    for n in range(3):  # 3 an interval: each push alone is small
        world.advance(30)
        world.send(*[event(e, False, 60 + n) for e in emails[3 * n : 3 * n + 3]])
        assert world.push().status == PushStatus.OK
    world.advance(30)
    world.send(*[event(e, False, 70) for e in emails[9:12]])
    result = world.push()
    assert (result.status, result.held_fields) == (PushStatus.HELD, [VIP])
    assert "12 of 20" in (result.error or "")
    assert len(world.boxes()) == 11
    world.advance(world.settings.push.flip_window.total_seconds())
    assert world.push().status == PushStatus.OK, "outside the window the field is judged anew"
    assert len(world.boxes()) == 8


def test_allowing_a_mass_flip_does_not_hold_the_next_push(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails])
    world.push()
    world.send(*[event(e, False, 60) for e in emails[:15]])
    assert world.push().status == PushStatus.HELD
    assert world.push(allow_mass_flip=True).status == PushStatus.OK
    world.send(event(emails[15], False, 90))
    assert world.push().status == PushStatus.OK


def test_a_field_listrak_refuses_blocks_no_other_audience(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails])
    world.send(*[event(e, True, key="lapsed") for e in emails])
    world.sim.remove_field(LIST, LAPSED)  # deleted in Listrak after `check`
    result = world.push()
    assert world.boxes(VIP) == keys(emails), "every other audience still goes out"
    assert result.exit_code == EXIT_CONFIG
    assert result.error is not None and f"field {LAPSED}" in result.error
    assert result.requests < 30
    rows = world.rows()
    assert {rows[(LAPSED, e.lower())]["attempts"] for e in emails} <= {0, 1}
    assert not any(rows[(LAPSED, e.lower())]["dead"] for e in emails)
    assert result.backlog.pending == 20


def test_a_contact_refused_with_several_fields_is_retried_one_field_at_a_time(
    world: World, emails: list[str]
) -> None:
    world.send(event(emails[0], True), event(emails[0], True, key="lapsed"))
    world.send(event(emails[1], True))
    world.sim.remove_field(LIST, LAPSED)
    result = world.push()
    assert world.boxes(VIP) == keys(emails[:2])
    assert (result.accepted, result.rejected) == (2, 1)
    assert world.rows()[(LAPSED, emails[0].lower())]["attempts"] == 1


def test_two_pushers_never_push_together(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails[:6]])
    refused: list[str] = []

    def second_pusher(call: int) -> None:
        try:
            world.db.locks.take(LIST, "second pusher", kind=PUSH_LOCK).release()
        except ListBusyError as exc:
            refused.append(str(exc))

    assert hooked_push(world, second_pusher).status == PushStatus.OK
    assert refused and refused[0].startswith(f"list {LIST} is being pushed by ")
    with world.db.locks.hold(LIST, "the daemon", kind=PUSH_LOCK):
        world.send(event(emails[7], True))
        result = world.push()
    assert result.status == PushStatus.SKIPPED and result.requests == 0
    assert result.error == f"list {LIST} is being pushed by the daemon; skipped"
    assert world.push().accepted == 1
