"""Segment outages are the endpoint's fault: no row dies of one; recovery delivers everything."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listrak_source.cli.wiring import run_context
from listrak_source.config import load_settings
from listrak_source.records import RunStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.subscribers.sync import sync_list

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    member_rows,
    run_cli,
    status_json,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
# Every attempt a row could spend would kill it within a few runs, were outages charged to rows.
STRICT = '[delivery]\nmax_attempts = 2\nbackoff_base = "1h"\n'


@pytest.fixture
def config(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 600, field_id=FIELD, seed=3)
    return write_config(tmp_path / "config.toml", sim, sink, db_url, [MAIN], extra=STRICT)


def test_down_then_flaky_then_healthy_ends_with_everything_and_nothing_dead(
    config: Path, db_url: str, sim: ListrakSimulator, sink: SegmentSink, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__CHUNK_SIZE", "40")  # many batches to fail in
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__MAX_RETRIES", "1")
    sink.faults.outage = True
    assert run_cli(config, "sync") == 1
    assert "partial" in capsys.readouterr().out
    sink.faults.reset()
    sink.faults.fail_share(0.2, seed=7)
    sink.faults.lose_ack_share(0.05, status=503, seed=8)
    for key in sorted(sim.truth(1001, FIELD))[:30]:
        sim.unsubscribe(1001, key)
    for _ in range(3):
        code = run_cli(config, "sync")
        status = status_json(config)[1001]
        # Honest: exit 0 and `ok` only when nothing is left; otherwise partial and exit 1.
        assert (code == 0) == (status["last_run"]["status"] == "ok") == (status["pending"] == 0)
        assert status["dead"] == 0
    sink.faults.reset()
    assert run_cli(config, "sync") == 0
    rows = member_rows(db_url, 1001).values()
    assert not any(r["dead"] for r in rows) and all(r["message_id"] is None for r in rows)
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)


def test_a_day_long_outage_kills_nothing_and_the_first_healthy_run_delivers_all(
    config: Path, db_url: str, sim: ListrakSimulator, sink: SegmentSink, monkeypatch
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__MAX_RETRIES", "0")
    settings = load_settings(config)
    sink.faults.outage = True
    start = datetime(2026, 12, 1, tzinfo=UTC)
    with run_context(settings) as real:
        # A run every hour for a day: three times more runs than a row has attempts.
        for hour in range(24 + 1):
            now = start + timedelta(hours=hour)
            ctx = dataclasses.replace(real, clock=lambda now=now: now)
            if hour % 2 == 0:
                sim.subscribe(1001, f"new{hour}@example.com")
            result = sync_list(ctx, settings.lists[0])
            assert result.status == RunStatus.PARTIAL and result.dead == 0
            assert result.pending > 0 and "outage" in (result.error or "")
        sink.faults.reset()
        later = start + timedelta(hours=24, minutes=15)
        result = sync_list(dataclasses.replace(real, clock=lambda: later), settings.lists[0])
    assert result.status == RunStatus.OK and (result.pending, result.dead) == (0, 0)
    assert all(r["attempts"] == 0 for r in member_rows(db_url, 1001).values())
    assert_profiles_match(sim, sink, [MAIN])


def test_segment_refusing_every_batch_charges_no_row(
    config: Path, db_url: str, sim: ListrakSimulator, sink: SegmentSink, capsys
) -> None:
    sink.faults.refuse_all = 413
    for _ in range(3):  # more runs than max_attempts: a charged row would be dead by now
        assert run_cli(config, "sync") == 1
        assert "refuses every batch" in capsys.readouterr().out
        assert sink.stats.requests <= 4  # the batch, its halves, an empty one; not bisected
        sink.stats.requests = 0
    rows = member_rows(db_url, 1001).values()
    assert not any(r["dead"] or r["attempts"] for r in rows)
    assert status_json(config)[1001]["dead"] == 0
    sink.faults.refuse_all = None
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])
