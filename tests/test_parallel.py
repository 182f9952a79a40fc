"""Delivery from a second process while the scan goes on: same profiles, same guarantees."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .e2e import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    run_cli,
    status_json,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}


@pytest.fixture
def config(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "200")
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__PARALLEL_AFTER", "400")
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__CHUNK_SIZE", "300")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 3000, field_id=FIELD, seed=13)
    sim.faults.page_delay = 0.03  # a scan long enough for the helper to deliver beside it
    return write_config(
        tmp_path / "c.toml",
        sim,
        sink,
        db_url,
        [MAIN],
        extra='[delivery]\nbackoff_base = "0.2s"\nbackoff_max = "0.2s"\n',
    )


def test_parallel_delivery_sends_everything_once(config: Path, sim, sink, caplog) -> None:
    assert run_cli(config, "sync") == 0
    assert "delivering in a second process" in caplog.text
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)
    assert len({m["messageId"] for m in sink.messages}) == 3000
    last = status_json(config)[1001]
    assert last["pending"] == 0 and last["last_run"]["delivered"] == 3000
    assert run_cli(config, "sync") == 0  # and nothing more to send
    assert len({m["messageId"] for m in sink.messages}) == 3000


def test_parallel_delivery_with_segment_down(config: Path, sim, sink) -> None:
    sink.faults.fail_next(100_000, status=503)
    assert run_cli(config, "sync") == 1
    assert status_json(config)[1001]["pending"] == 3000  # nothing accepted, nothing lost
    sink.faults.reset()
    time.sleep(0.3)  # the rows' backoff
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)
