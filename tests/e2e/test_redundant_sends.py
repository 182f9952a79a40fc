"""A change back to what Segment last accepted drops the pending message only when that
message was never posted; once posted, Segment may have kept it (a 502 from a proxy after
Segment took the batch), so the change back goes out. A removal always goes out. (The
drop itself: test_segment_truth's change never posted.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import FIELD, assert_profiles_match, member_rows, run_cli, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}
TRAIT = "Listrak_list_1001"


@pytest.fixture
def synced(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 20, field_id=FIELD, field_ratio=1.0, seed=12)
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    return config


def while_segment_is_down(config: Path, sink: SegmentSink) -> None:
    sink.faults.fail_next(10_000, status=503)
    assert run_cli(config, "sync") == 1
    sink.faults.reset()


def test_a_user_id_changed_and_changed_back_after_a_503_is_sent_again(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    key = sorted(sim.truth(1001, FIELD))[0]
    before = sim.truth(1001, FIELD)[key]["user_id"]
    sim.set_field(1001, key, FIELD, "crm-elsewhere")
    while_segment_is_down(synced, sink)  # posted: a proxy may have answered for Segment
    assert member_rows(db_url, 1001)[key]["in_doubt"] is True
    sim.set_field(1001, key, FIELD, str(before))
    start = len(sink.messages)
    assert run_cli(synced, "sync") == 0
    assert [m["userId"] for m in sink.messages[start:]] == [before]
    assert member_rows(db_url, 1001)[key]["in_doubt"] is False
    assert_profiles_match(sim, sink, [MAIN])


def test_a_removal_always_goes_out(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    key = sorted(sim.truth(1001, FIELD))[0]
    sim.unsubscribe(1001, key)
    assert run_cli(synced, "sync") == 0  # Segment took the null
    sim.subscribe(1001, key)
    while_segment_is_down(synced, sink)  # the true may or may not have been kept
    sim.unsubscribe(1001, key)
    start = len(sink.messages)
    assert run_cli(synced, "sync") == 0
    assert [m["traits"][TRAIT] for m in sink.messages[start:]] == [None]
    assert_profiles_match(sim, sink, [MAIN])
