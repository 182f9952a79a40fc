"""A clock set back never stamps a change before the list's earlier messages: Segment keeps
a profile's traits in timestamp order, so a removal stamped before the `true` it removes
would leave the trait set."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listrak_source.cli.wiring import run_context
from listrak_source.config import Settings, load_settings
from listrak_source.delivery.context import ListRun
from listrak_source.records import RunStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles
from listrak_source.subscribers import sync as sync_module
from listrak_source.subscribers.sync import sync_list

from .harness import FIELD, assert_profiles_match, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}


def _seeded(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, size: int
) -> Settings:
    """A list of `size` subscribers, each with a userId, and settings to sync it."""
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, size, field_id=FIELD, field_ratio=1.0, seed=1)
    return load_settings(write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN]))


def _stamps_by_contact(sink: SegmentSink) -> dict[str, list[str]]:
    stamps: dict[str, list[str]] = defaultdict(list)
    for message in sink.messages:
        stamps[message["anonymousId"].lower()].append(message["timestamp"])
    return stamps


def test_changes_after_the_clock_went_back_are_stamped_after_the_ones_before(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    settings = _seeded(tmp_path, sim, sink, db_url, 4)
    gone, edited = sorted(sim.truth(1001, FIELD))[:2]
    now = datetime.now(UTC)
    clocks = [now, now - timedelta(minutes=10), now - timedelta(minutes=9), now + timedelta(1)]
    changes = [
        lambda: None,
        lambda: (sim.unsubscribe(1001, gone), sim.set_field(1001, edited, FIELD, "v2")),
        lambda: (sim.subscribe(1001, gone), sim.set_field(1001, edited, FIELD, "v3")),
        lambda: sim.unsubscribe(1001, gone),
    ]
    with run_context(settings) as real:
        for clock, change in zip(clocks, changes, strict=True):
            change()
            ctx = dataclasses.replace(real, clock=lambda moment=clock: moment)
            assert sync_list(ctx, settings.lists[0]).status == RunStatus.OK
    stamps = _stamps_by_contact(sink)
    for email, sent in ((gone, 4), (edited, 3)):
        assert len(set(stamps[email])) == len(stamps[email]) == sent
        assert stamps[email] == sorted(stamps[email])
    assert_profiles_match(sim, sink, [MAIN])


class _SteppedClock:
    """`start` for the run's first reading, then whatever `now` is set to."""

    def __init__(self, start: datetime, now: datetime) -> None:
        self.start, self.now, self.read = start, now, False

    def __call__(self) -> datetime:
        if not self.read:
            self.read = True
            return self.start
        return self.now


def test_a_clock_stepped_back_as_a_run_ends_never_stamps_the_next_run_before_it(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run stamped its messages ten minutes after its start, then the clock went back
    an hour before it ended: the next run still stamps after those messages."""
    settings = _seeded(tmp_path, sim, sink, db_url, 3)
    gone = sorted(sim.truth(1001, FIELD))[0]
    now = datetime.now(UTC)
    clock = _SteppedClock(now, now + timedelta(minutes=10))
    finish = sync_module._finish

    def stepped_back_finish(run: ListRun) -> None:
        clock.now = now - timedelta(hours=1)
        finish(run)

    monkeypatch.setattr(sync_module, "_finish", stepped_back_finish)
    with run_context(settings) as real:
        sync_list(dataclasses.replace(real, clock=clock), settings.lists[0])
        monkeypatch.setattr(sync_module, "_finish", finish)
        sim.unsubscribe(1001, gone)
        later = now - timedelta(minutes=59)
        sync_list(dataclasses.replace(real, clock=lambda: later), settings.lists[0])
    stamps = _stamps_by_contact(sink)[gone]
    assert len(stamps) == 2 and stamps == sorted(stamps)
    assert_profiles_match(sim, sink, [MAIN])


def test_runs_after_a_clock_far_ahead_came_back_record_their_own_times(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Their stamps stay after the messages stamped ahead; their starts, ends and
    durations are the clock's, for status and metrics."""
    settings = _seeded(tmp_path, sim, sink, db_url, 3)
    ahead = datetime.now(UTC) + timedelta(days=365)
    gone = sorted(sim.truth(1001, FIELD))[0]
    with run_context(settings) as real:
        sync_list(dataclasses.replace(real, clock=lambda: ahead), settings.lists[0])
        sim.unsubscribe(1001, gone)
        results = [sync_list(real, settings.lists[0]) for _ in range(2)]
    for result in results:
        assert result.finished_at is not None
        assert timedelta(0) <= result.finished_at - result.started_at < timedelta(minutes=1)
        assert result.finished_at < ahead
    stamps = _stamps_by_contact(sink)[gone]
    assert len(stamps) == 2 and stamps == sorted(stamps)
    assert_profiles_match(sim, sink, [MAIN])


def test_a_run_killed_while_the_clock_is_behind_never_lets_the_next_stamp_before_it(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its stamps went on from the last run's, ahead of its clock; it recorded no end, and
    the next run, by the same clock, still stamps after them."""
    settings = _seeded(tmp_path, sim, sink, db_url, 3)
    now = datetime.now(UTC)
    behind = now - timedelta(hours=1)
    with run_context(settings) as real:
        sync_list(dataclasses.replace(real, clock=lambda: now), settings.lists[0])
        sim.subscribe(1001, "new@example.com")
        # Its first request is slow, so that its stamps go further past the last run's
        # than the next run's first ones do.
        sim.faults.on_request = lambda path: (
            time.sleep(2),
            setattr(sim.faults, "on_request", None),
        )
        monkeypatch.setattr(sync_module, "_finish", lambda run: None)  # killed: nothing recorded
        sync_list(dataclasses.replace(real, clock=lambda: behind), settings.lists[0])
        monkeypatch.undo()
        sim.unsubscribe(1001, "new@example.com")
        sync_list(dataclasses.replace(real, clock=lambda: behind), settings.lists[0])
    stamps = _stamps_by_contact(sink)["new@example.com"]
    assert len(stamps) == 2 and stamps[0] < stamps[1]
    assert_profiles_match(sim, sink, [MAIN])


def test_a_trait_name_taken_from_a_list_whose_clock_ran_ahead_is_stamped_after_its_nulls(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """List 1001 synced with the clock an hour fast, then gave its name up by a rename;
    the list taking the name stamps after every moment 1001's runs recorded."""
    shared = "shared@example.com"
    for list_id in (1001, 1003):
        sim.add_list(list_id, f"L{list_id}")
        sim.subscribe(list_id, shared)
    now = datetime.now(UTC)
    first = [{"id": 1001, "trait": "alpha"}]
    one = load_settings(write_config(tmp_path / "a.toml", sim, sink, db_url, first))
    with run_context(one) as real:
        ahead = dataclasses.replace(real, clock=lambda: now + timedelta(hours=1))
        assert sync_list(ahead, one.lists[0]).status == RunStatus.OK

    moved = [{"id": 1001, "trait": "gamma"}, {"id": 1003, "trait": "alpha"}]
    two = load_settings(write_config(tmp_path / "b.toml", sim, sink, db_url, moved))
    with run_context(two) as real:
        fixed = dataclasses.replace(real, clock=lambda: now + timedelta(minutes=1))
        assert sync_list(fixed, two.lists[0], rename_trait=True).status == RunStatus.OK
        assert sync_list(fixed, two.lists[1]).status == RunStatus.OK

    profile = rebuild_profiles(sink.messages)[shared]
    assert profile["traits"] == {"email": shared, "gamma": True, "alpha": True}
