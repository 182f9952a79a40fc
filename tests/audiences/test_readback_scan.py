"""The subscriber scan reads the audience fields back and catches what Listrak did not apply."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from listrak_source.engage.records import PushStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink

from .world import LIST, VIP, World, event, make_settings, prepare_list


@pytest.fixture
def emails(sim: ListrakSimulator) -> list[str]:
    return prepare_list(sim, subscribers=12)


@pytest.fixture
def world(
    sim: ListrakSimulator, sink: SegmentSink, db_url: str, engine: Engine, emails: list[str]
) -> Iterator[World]:
    world = World(sim, make_settings(sim, sink, db_url), engine)
    world.sync()
    yield world


def summary(world: World) -> dict[str, int]:
    return world.db.audience_reports.summary(LIST)[VIP]


def test_the_scan_asks_for_the_audience_fields(world: World) -> None:
    scans = [r for r in world.sim.requests if r.path.endswith("/Contact")]
    assert scans[-1].query["segmentationFieldIds"] == "901,902"


def test_applied_values_are_verified_by_the_next_scan(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails[:3]])
    world.push()
    assert summary(world)["unverified"] == 3
    world.sim.apply_imports()
    world.advance(61)  # past apply_grace
    world.sync()
    counts = summary(world)
    assert (counts["applied"], counts["unverified"], counts["mismatched"]) == (3, 0, 0)


def test_a_dropped_import_is_caught_and_sent_again(world: World, emails: list[str]) -> None:
    world.send(*[event(e, True) for e in emails[:3]])
    world.sim.faults.drop_imports = True
    assert world.push().accepted == 3
    world.sync()  # within the grace: nothing is judged yet
    assert summary(world)["pending"] == 0
    world.advance(61)
    world.sync()
    counts = summary(world)
    assert (counts["pending"], counts["mismatched"]) == (3, 3)
    assert world.db.audience_reports.counters()["mismatched"] == 3
    world.sim.faults.drop_imports = False
    result = world.push()
    assert (result.status, result.accepted) == (PushStatus.OK, 3)
    assert world.boxes() == {e.lower() for e in emails[:3]}
    world.advance(61)
    world.sync()
    counts = summary(world)
    assert (counts["applied"], counts["mismatched"], counts["pending"]) == (3, 0, 0)


def test_a_box_someone_unchecked_in_listrak_is_set_again(world: World, emails: list[str]) -> None:
    world.send(event(emails[0], True))
    world.push()
    world.sim.apply_imports()
    world.sim.set_field(LIST, emails[0], VIP, None)
    world.advance(61)
    world.sync()
    assert world.push().accepted == 1
    assert world.boxes() == {emails[0].lower()}


def test_checked_is_read_in_any_spelling(world: World, emails: list[str]) -> None:
    world.sim.faults.checked_value = "True"
    world.send(event(emails[0], True))
    world.push()
    world.sim.apply_imports()
    world.advance(61)
    world.sync()
    assert summary(world)["applied"] == 1


def test_an_exit_listrak_already_shows_needs_no_request(world: World, emails: list[str]) -> None:
    world.send(event(emails[0], False))
    world.sync()  # read back before any push: the box is already clear
    assert world.push().requests == 0
    assert summary(world)["applied"] == 1


def test_a_value_listrak_never_applies_dies_after_max_mismatches(
    world: World, emails: list[str]
) -> None:
    world.send(event(emails[0], True), event(emails[1], True))
    world.sim.faults.drop_imports = True
    for _ in range(world.settings.push.max_mismatches):
        assert world.push().status == PushStatus.OK
        world.advance(61)
        world.sync()
    result = world.push()
    assert (result.status, result.requests, result.backlog.dead) == (PushStatus.PARTIAL, 0, 2)
    assert result.error is not None and "dead" in result.error
    counts = summary(world)
    assert (counts["dead"], counts["pending"]) == (2, 0)
    row = world.rows()[(VIP, emails[0].lower())]
    assert row["dead"] and "never applied" in row["last_error"]
    world.sim.faults.drop_imports = False
    assert world.db.audiences.revive_dead(LIST) == 2  # `retry`, once Listrak is fixed
    assert world.push().accepted == 2
    world.advance(61)
    world.sync()
    assert summary(world)["applied"] == 2


def test_a_mismatch_then_an_applied_value_starts_the_count_again(
    world: World, emails: list[str]
) -> None:
    world.send(event(emails[0], True))

    def round_trip(dropped: bool) -> None:
        world.sim.faults.drop_imports = dropped
        world.push()
        world.advance(61)
        world.sync()

    for dropped in [True, True, False]:  # two mismatches, then applied
        round_trip(dropped)
    world.sim.set_field(LIST, emails[0], VIP, None)  # someone unchecks it in Listrak
    world.sync()
    round_trip(True)
    row = world.rows()[(VIP, emails[0].lower())]
    assert (row["mismatches"], row["dead"]) == (2, False)
