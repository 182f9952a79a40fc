"""Pushes of audience values to the simulator's bulk route, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from listrak_source.engage.records import PushStatus
from listrak_source.errors import EXIT_CONFIG
from listrak_source.simulator import ListrakSimulator, SegmentSink

from .world import (
    LAPSED,
    LIST,
    T0,
    VIP,
    World,
    bodies,
    emails_in,
    event,
    make_settings,
    prepare_list,
)


@pytest.fixture
def emails(sim: ListrakSimulator) -> list[str]:
    return prepare_list(sim, subscribers=20)


@pytest.fixture
def world(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, engine: Engine, emails: list[str]
) -> Iterator[World]:
    settings = make_settings(sim, sink, db_url, push={"max_contacts_per_request": 4})
    world = World(sim, settings, engine)
    world.sync()
    yield world


def test_each_email_once_a_request_with_its_fields_together(
    world: World, emails: list[str]
) -> None:
    world.send(*[event(e, True, key="vip") for e in emails[:6]])
    world.send(*[event(e, True, key="lapsed") for e in emails[:3]])
    result = world.push()
    assert (result.status, result.accepted, result.contacts) == (PushStatus.OK, 9, 6)
    sent = bodies(world.sim)
    assert [len(body) for body in sent] == [4, 2]  # max_contacts_per_request
    for body in sent:
        assert len(emails_in([body])) == len(set(emails_in([body])))
    first = sent[0][0]
    assert first["segmentationFieldValues"] == [
        {"segmentationFieldId": VIP, "value": "on"},
        {"segmentationFieldId": LAPSED, "value": "on"},
    ]
    assert world.boxes(VIP) == {e.lower() for e in emails[:6]}
    assert world.boxes(LAPSED) == {e.lower() for e in emails[:3]}
    assert world.push().requests == 0, "a second push has nothing to send"


def test_the_newest_event_wins_in_any_order_and_exits_uncheck(
    world: World, emails: list[str]
) -> None:
    a, b = emails[0], emails[1]
    world.send(event(a, False, 20), event(b, True, 5))
    world.send(event(a, True, 10), event(b, False, 1))  # both older: superseded
    world.push()
    assert world.boxes() == {b.lower()}
    world.send(event(b, False, 30))
    world.push()
    assert world.boxes() == set()
    assert bodies(world.sim)[-1] == [
        {
            "emailAddress": b,
            "segmentationFieldValues": [{"segmentationFieldId": VIP, "value": "off"}],
        }
    ]


def test_non_subscribers_are_held_then_go_out_once_they_subscribe(world: World) -> None:
    world.send(event("Newcomer@Example.com", True), event("gone@example.com", True))
    result = world.push()
    assert (result.status, result.accepted, result.backlog.held) == (PushStatus.OK, 0, 2)
    assert world.sim.bulk_requests == []
    world.sim.subscribe(LIST, "newcomer@example.com")
    world.sync()
    result = world.push()
    assert (result.accepted, result.backlog.held) == (1, 1)
    # Listrak's own spelling of the address is what the route is sent.
    assert emails_in(bodies(world.sim)) == ["newcomer@example.com"]
    assert world.boxes() == {"newcomer@example.com"}


def test_an_unsubscribed_contact_is_never_written(world: World, emails: list[str]) -> None:
    world.sim.unsubscribe(LIST, emails[0])
    world.sync()
    world.send(event(emails[0], True))
    assert world.push().backlog.held == 1
    assert world.sim.bulk_requests == []


@pytest.mark.parametrize("status", [500, 503, 429])
def test_an_outage_spends_no_attempt_and_the_next_push_sends_it(
    world: World, emails: list[str], status: int
) -> None:
    world.send(*[event(e, True) for e in emails[:3]])
    if status == 429:
        world.sim.faults.rate_limit_bulk_next(100)
    else:
        world.sim.faults.fail_bulk_next(100, status)
    result = world.push()
    assert result.status == PushStatus.PARTIAL
    assert result.outage is not None and str(status) in result.outage
    assert result.backlog.pending == 3
    rows = world.rows()
    assert {r["attempts"] for r in rows.values()} == {0}
    label = "rate limited" if status == 429 else "outage"
    assert {r["last_error"].split(":")[0] for r in rows.values()} == {label}
    world.sim.faults.reset()
    result = world.push()
    assert (result.status, result.accepted) == (PushStatus.OK, 3)
    assert world.boxes() == {e.lower() for e in emails[:3]}


def test_a_blip_is_retried_inside_one_push(world: World, emails: list[str]) -> None:
    world.send(event(emails[0], True))
    world.sim.faults.fail_bulk_next(2, 500)
    world.sim.faults.rate_limit_bulk_next(1, retry_after=7)
    result = world.push()
    assert (result.status, result.accepted) == (PushStatus.OK, 1)
    assert 7 in world.time.sleeps  # Retry-After honoured, on the injected clock


def test_a_body_listrak_refuses_is_split_to_the_contact_at_fault(
    world: World, emails: list[str]
) -> None:
    world.send(*[event(e, True) for e in emails[:4]])
    bad = emails[1].lower()
    world.sim.faults.refuse_emails = {bad}
    result = world.push()
    assert (result.status, result.accepted, result.rejected) == (PushStatus.PARTIAL, 3, 1)
    assert world.boxes() == {e.lower() for e in emails[:4]} - {bad}
    refused = world.rows()[(VIP, bad)]
    assert refused["attempts"] == 1 and refused["last_error"].startswith("rejected: ")
    assert bad not in refused["last_error"]
    assert world.push().requests == 0, "the refused value backs off"
    world.advance(3600)
    world.sim.faults.refuse_emails = set()
    assert world.push().accepted == 1


def test_a_value_refused_max_attempts_times_is_dead(world: World, emails: list[str]) -> None:
    world.send(event(emails[0], True))
    world.sim.faults.refuse_emails = {emails[0]}
    for _ in range(world.settings.delivery.max_attempts):
        world.push()
        world.advance(7 * 3600)
    result = world.push()
    assert (result.status, result.backlog.dead, result.requests) == (PushStatus.PARTIAL, 1, 0)
    assert world.db.audiences.revive_dead(LIST) == 1  # what `retry` does
    assert world.push().rejected == 1, "due again, and refused again"
    world.send(event(emails[0], False, 60))  # a new value gets a clean slate
    world.sim.faults.refuse_emails = set()
    assert world.push().accepted == 1


@pytest.mark.parametrize("status", [401, 403, 400])
def test_the_beta_refusal_is_one_configuration_error(
    world: World, emails: list[str], status: int
) -> None:
    world.send(event(emails[0], True))
    world.sim.faults.refuse_beta = True
    world.sim.faults.beta_status = status
    result = world.push()
    assert (result.status, result.exit_code) == (PushStatus.FAILED, EXIT_CONFIG)
    assert result.error is not None and "Beta route" in result.error
    assert "\n" not in result.error
    assert world.rows()[(VIP, emails[0].lower())]["attempts"] == 0


def test_a_mass_uncheck_is_held_until_allowed(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, engine: Engine, emails: list[str]
) -> None:
    settings = make_settings(sim, sink, db_url, push={"max_flip_ratio": 0.5, "min_flip_count": 3})
    world = World(sim, settings, engine)
    world.sync()
    world.send(*[event(e, True) for e in emails[:10]])
    world.send(event(emails[0], True, key="lapsed"))
    assert world.push().accepted == 11
    world.send(*[event(e, False, 60) for e in emails[:8]])  # the audience was deleted
    world.send(event(emails[0], False, 60, key="lapsed"))
    result = world.push()
    assert result.status == PushStatus.HELD
    assert result.held_fields == [VIP]
    assert result.error is not None and "--allow-mass-flip" in result.error
    assert "8 of 10" in result.error
    assert world.boxes(VIP) == {e.lower() for e in emails[:10]}
    assert world.boxes(LAPSED) == set(), "other fields still go out"
    result = world.push(allow_mass_flip=True)
    assert (result.status, result.accepted) == (PushStatus.OK, 8)
    assert world.boxes(VIP) == {e.lower() for e in emails[8:10]}


def test_a_few_unchecks_are_never_held(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails[:2]])
    world.push()
    world.send(*[event(e, False, 60) for e in emails[:2]])
    assert world.push().status == PushStatus.OK  # 100 % of 2, under min_flip_count


def test_full_requests_when_more_is_pending_than_one_request_holds(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, engine: Engine
) -> None:
    emails = prepare_list(sim, subscribers=30)
    settings = make_settings(sim, sink, db_url, push={"max_contacts_per_request": 10})
    world = World(sim, settings, engine)
    world.sync()
    world.send(*[event(e, True) for e in emails])
    world.send(*[event(e, True, key="lapsed") for e in emails[::2]])
    result = world.push()
    assert (result.accepted, result.contacts) == (45, 30)
    assert sorted(len(body) for body in bodies(sim)) == [10, 10, 10]
    assert sorted(emails_in(bodies(sim))) == sorted(e.lower() for e in emails)


def test_a_refused_token_stops_the_push_once_and_spends_nothing(
    world: World, emails: list[str]
) -> None:
    world.send(*[event(e, True) for e in emails[:6]])
    world.sim.client_secret = "rotated-in-listrak"
    result = world.push()
    assert (result.status, result.exit_code) == (PushStatus.FAILED, EXIT_CONFIG)
    assert result.error is not None and "refused the client id/secret" in result.error
    assert (result.requests, result.rejected) == (1, 0), "no bisection into single contacts"
    assert {r["attempts"] for r in world.rows().values()} == {0}
    assert world.push().requests == 1, "nothing waits in backoff"


def test_retry_brings_forward_values_waiting_in_backoff(world: World, emails: list[str]) -> None:
    world.send(event(emails[0], True), event(emails[1], True))
    world.sim.faults.refuse_emails = {emails[0].lower()}
    assert world.push().rejected == 1
    world.sim.faults.refuse_emails = set()
    assert world.push().requests == 0, "the refused value backs off"
    assert world.db.audiences.revive_dead(LIST) == 1  # what `retry` does
    assert (world.push().accepted, world.rows()[(VIP, emails[0].lower())]["attempts"]) == (1, 0)


def test_an_event_from_the_future_is_refused_as_content_and_never_ranked(
    world: World, emails: list[str]
) -> None:
    a, b = emails[0], emails[1]
    far = event(a, True)
    far["timestamp"] = "9999-12-31T23:59:59.999Z"
    ahead = (world.now - T0).total_seconds()
    result = world.send(far, event(b, True, ahead + 6 * 60), event(b, False, ahead + 4 * 60))
    assert (result.received, result.recorded) == (3, 1)
    assert result.ignored == {"future_timestamp": 2}
    world.send(event(a, False, 10))  # a real, later event is not "superseded"
    world.push()
    assert world.boxes() == set()
    assert world.rows()[(VIP, a.lower())]["desired"] is False
    assert world.db.audience_reports.counters()["ignored:future_timestamp"] == 2
