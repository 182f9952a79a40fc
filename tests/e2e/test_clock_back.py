"""A clock set back never stamps a change before the list's earlier messages: Segment keeps
a profile's traits in timestamp order, so a removal stamped before the `true` it removes
would leave the trait set."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from listrak_source.cli.wiring import run_context
from listrak_source.config import load_settings
from listrak_source.records import RunStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.subscribers.sync import sync_list

from .harness import FIELD, assert_profiles_match, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}


def _stamps_by_contact(sink: SegmentSink) -> dict[str, list[str]]:
    stamps: dict[str, list[str]] = defaultdict(list)
    for message in sink.messages:
        stamps[message["anonymousId"].lower()].append(message["timestamp"])
    return stamps


def test_changes_after_the_clock_went_back_are_stamped_after_the_ones_before(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 4, field_id=FIELD, field_ratio=1.0, seed=1)
    settings = load_settings(write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN]))
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
