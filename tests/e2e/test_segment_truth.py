"""What Segment holds matches Listrak after lost answers, renames, case changes, clocks and
baselines: each run that says `ok` leaves the profiles rebuilt from the sink equal to Listrak."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles

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
RENAMED = {**MAIN, "trait": "listrak_list_{list_id}"}
INCREMENTAL = {**MAIN, "full_scan_every": "24h"}
TRAIT, NEW_TRAIT = "Listrak_list_1001", "listrak_list_1001"
# Retries of a failing batch would only repeat what the first attempt shows.
FAST = "[delivery]\nmax_attempts = 5\n"


@pytest.fixture
def synced(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 12, field_id=FIELD, field_ratio=1.0, seed=17)
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN])
    config.write_text(config.read_text().replace("timeout = 5", "timeout = 5\nmax_retries = 0"))
    assert run_cli(config, "sync") == 0
    return config


def a_subscriber(sim: ListrakSimulator, n: int = 0) -> str:
    return sorted(sim.truth(1001, FIELD))[n]


def sync_losing_answers(config: Path, sink: SegmentSink) -> None:
    """Segment keeps every batch but the answer never comes back: the run cannot say ok."""
    sink.faults.lose_ack_next(10_000)
    assert run_cli(config, "sync") == 1
    sink.faults.reset()


def sync_in_outage(config: Path, sink: SegmentSink) -> None:
    sink.faults.outage = True
    assert run_cli(config, "sync") == 1
    sink.faults.reset()


def sent_since(sink: SegmentSink, start: int) -> list[dict[str, Any]]:
    return sink.messages[start:]


def test_a_resubscribe_after_a_lost_answer_is_sent(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink
) -> None:
    key = a_subscriber(sim)
    sim.unsubscribe(1001, key)
    sync_losing_answers(synced, sink)  # Segment holds the null; we never heard so
    sim.subscribe(1001, key)
    assert run_cli(synced, "sync") == 0
    assert rebuild_profiles(sink.messages)[key]["traits"].get(TRAIT) is True
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)


def test_a_user_id_reverted_after_a_lost_answer_is_sent(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink
) -> None:
    key = a_subscriber(sim)
    before = str(sim.truth(1001, FIELD)[key]["user_id"])
    sim.set_field(1001, key, FIELD, "crm-elsewhere")
    sync_losing_answers(synced, sink)
    sim.set_field(1001, key, FIELD, before)
    assert run_cli(synced, "sync") == 0
    assert rebuild_profiles(sink.messages)[key]["user_id"] == before
    assert_profiles_match(sim, sink, [MAIN])


def test_a_change_never_posted_is_dropped_and_one_posted_is_sent(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    posted, stored_only = a_subscriber(sim, 0), a_subscriber(sim, 1)
    before = str(sim.truth(1001, FIELD)[posted]["user_id"])
    kept = str(sim.truth(1001, FIELD)[stored_only]["user_id"])
    sim.set_field(1001, posted, FIELD, "crm-elsewhere")  # on a page: posted into the outage
    sim.remove(1001, stored_only)  # confirmed after the scan, when delivery had stopped
    sync_in_outage(synced, sink)
    rows = member_rows(db_url, 1001)
    assert rows[posted]["message_id"] and rows[stored_only]["message_id"]
    sim.set_field(1001, posted, FIELD, before)
    sim.subscribe(1001, stored_only, {FIELD: kept})
    start = len(sink.messages)
    assert run_cli(synced, "sync") == 0
    assert [m["anonymousId"].lower() for m in sent_since(sink, start)] == [posted]
    assert member_rows(db_url, 1001)[stored_only]["message_id"] is None
    assert_profiles_match(sim, sink, [MAIN])


def test_changes_during_a_rename_remove_the_old_trait_too(
    tmp_path: Path, synced: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    edited, joined = a_subscriber(sim, 0), "joined@example.com"
    sim.set_field(1001, edited, FIELD, "crm-new")
    sim.subscribe(1001, joined, {FIELD: "crm-joined"})
    renamed = write_config(tmp_path / "r.toml", sim, sink, db_url, [RENAMED])
    assert run_cli(renamed, "rename-trait", "--list", "1001", "--confirm") == 0
    profiles = rebuild_profiles(sink.messages)
    holding_old = sorted(k for k, p in profiles.items() if TRAIT in p["traits"])
    assert holding_old == []
    for key in sim.truth(1001, FIELD):
        assert profiles[key]["traits"].get(NEW_TRAIT) is True


def test_a_rename_never_posted_reaches_a_contact_that_changes_back(
    tmp_path: Path, synced: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    key, other = a_subscriber(sim, 0), a_subscriber(sim, 1)
    uid = str(sim.truth(1001, FIELD)[key]["user_id"])
    renamed = write_config(tmp_path / "r.toml", sim, sink, db_url, [RENAMED])
    sink.faults.outage = True
    # Each run's edit of `other` meets the outage first, so nothing else is posted.
    sim.set_field(1001, other, FIELD, "crm-1")
    assert run_cli(renamed, "rename-trait", "--list", "1001", "--confirm") == 1
    sim.set_field(1001, other, FIELD, "crm-2")
    sim.unsubscribe(1001, key)
    assert run_cli(renamed, "sync") == 1
    sim.subscribe(1001, key, {FIELD: uid})
    sink.faults.reset()
    assert run_cli(renamed, "sync") == 0
    profile = rebuild_profiles(sink.messages)[key]
    assert profile["traits"].get(NEW_TRAIT) is True and TRAIT not in profile["traits"]


def test_a_case_change_in_listrak_keeps_the_spelling_segment_got(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink
) -> None:
    sim.subscribe(1001, "Mixed.Case@Example.com", {FIELD: "crm-mixed"})
    assert run_cli(synced, "sync") == 0
    sim.override(1001, "mixed.case@example.com", {"emailAddress": "MIXED.CASE@EXAMPLE.COM"})
    assert run_cli(synced, "sync") == 0
    sim.set_field(1001, "mixed.case@example.com", FIELD, "crm-other")
    assert run_cli(synced, "sync") == 0
    sim.unsubscribe(1001, "mixed.case@example.com")
    assert run_cli(synced, "sync") == 0
    sent = [m for m in sink.messages if m["anonymousId"].lower() == "mixed.case@example.com"]
    assert len(sent) == 3
    assert {m["anonymousId"] for m in sent} == {"Mixed.Case@Example.com"}
    assert {m["traits"]["email"] for m in sent} == {"Mixed.Case@Example.com"}


@pytest.mark.parametrize("leaves", ["unsubscribed", "deleted from the list"])
def test_a_removal_carries_the_user_id_segment_accepted(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink, leaves: str
) -> None:
    key = a_subscriber(sim)
    accepted = str(sim.truth(1001, FIELD)[key]["user_id"])
    sim.set_field(1001, key, FIELD, "crm-never-accepted")
    sink.faults.poison = {key}  # refused: Segment never took it
    assert run_cli(synced, "sync") == 1
    sink.faults.reset()
    if leaves == "unsubscribed":
        sim.unsubscribe(1001, key)  # the diff's removal
    else:
        sim.remove(1001, key)  # the sweep's removal, once Listrak confirms it gone
    start = len(sink.messages)
    assert run_cli(synced, "sync") == 0
    (removal,) = sent_since(sink, start)
    assert removal["traits"][TRAIT] is None and removal["userId"] == accepted


def test_baseline_never_adopts_a_pending_unsubscribe(
    synced: Path, sim: ListrakSimulator, sink: SegmentSink, capsys: pytest.CaptureFixture[str]
) -> None:
    key = a_subscriber(sim)
    sim.unsubscribe(1001, key)
    sync_in_outage(synced, sink)
    sim.subscribe(1001, "newcomer@example.com")
    start = len(sink.messages)
    capsys.readouterr()
    assert run_cli(synced, "baseline") == 0
    sent = sent_since(sink, start)
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sent] == [(key, None)]
    assert "delivered 1" in capsys.readouterr().out
    profiles = rebuild_profiles(sink.messages)
    assert TRAIT not in profiles[key]["traits"] and "newcomer@example.com" not in profiles


@pytest.mark.parametrize("hours", [15, 3])
def test_a_date_hours_ahead_does_not_blind_incremental_polling(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, hours: int
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 12, field_id=FIELD, seed=3)
    # Listrak's dates are Eastern: 15 hours ahead reads ten hours after our clock's UTC;
    # 3 hours ahead is still before our clock's UTC, yet after Listrak's own now.
    sim.set_now(datetime.now(UTC) + timedelta(hours=hours))
    sim.subscribe(1001, "ahead@example.com")
    sim.set_now(None)
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [INCREMENTAL])
    assert run_cli(config, "sync") == 0  # the first run is full
    assert "ahead@example.com" not in (status_json(config)[1001]["last_run"]["note"] or "")
    assert "after" in (status_json(config)[1001]["last_run"]["note"] or "")
    leaver = a_subscriber(sim)
    sim.unsubscribe(1001, leaver)
    sim.subscribe(1001, "later@example.com")
    assert run_cli(config, "sync") == 0
    assert status_json(config)[1001]["last_run"]["full_scan"] is False
    assert_profiles_match(sim, sink, [INCREMENTAL])
