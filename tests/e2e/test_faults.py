"""Faults in Listrak and Segment: retried, held or failed, and never a lost or doubled change."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    lock_holders,
    member_rows,
    run_cli,
    status_json,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
FAST_RETRY = '[delivery]\nbackoff_base = "0.2s"\nbackoff_max = "0.2s"\nmax_attempts = 3\n'


@pytest.fixture
def config(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    # Small pages give a scan several pages to fail in; two attempts keep Listrak retries short.
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_ATTEMPTS", "2")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 500, field_id=FIELD, seed=11)
    return write_config(tmp_path / "config.toml", sim, sink, db_url, [MAIN], extra=FAST_RETRY)


def emails(sim: ListrakSimulator, count: int) -> list[str]:
    truth = sim.truth(1001, FIELD)
    return [str(truth[key]["email"]) for key in sorted(truth)[:count]]


def test_listrak_500s_and_429s_are_retried(config: Path, sim, sink, monkeypatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_ATTEMPTS", "4")
    sim.faults.fail_next(2, status=500)
    sim.faults.rate_limit_next(2, retry_after=1)
    assert run_cli(config, "sync") == 0
    statuses = [r.status for r in sim.requests]
    assert statuses.count(500) == 2 and statuses.count(429) == 2
    assert_profiles_match(sim, sink, [MAIN])


def test_tokens_that_expire_mid_scan_are_renewed(config: Path, sim, sink) -> None:
    sim.faults.token_ttl = 1  # whole seconds, as Listrak's expires_in
    sim.faults.page_delay = 0.3  # five pages outlive a token
    assert run_cli(config, "sync") == 0
    assert sim.token_requests > 1
    assert_profiles_match(sim, sink, [MAIN])


def test_scan_that_dies_part_way_removes_nobody(config: Path, sim, sink) -> None:
    assert run_cli(config, "sync") == 0
    sent = len(sink.messages)
    for email in emails(sim, 30):
        sim.remove(1001, email)
    sim.faults.die_after_page = 2
    assert run_cli(config, "sync") == 1
    assert len(sink.messages) == sent, "an incomplete scan must not sweep"
    last = status_json(config)[1001]["last_run"]
    assert last["status"] == "failed" and "500" in last["error"]
    sim.faults.die_after_page = None
    assert run_cli(config, "sync") == 0
    assert len(sink.messages) == sent + 30
    assert_profiles_match(sim, sink, [MAIN])


def test_mass_removal_is_held_until_allowed(config: Path, sim, sink, capsys) -> None:
    assert run_cli(config, "sync") == 0
    sent = len(sink.messages)
    for email in emails(sim, 300):
        sim.remove(1001, email)
    # Too many unseen to read one by one: a second full scan must miss them too, and a
    # first sight of so many gone is already held, though it removes nobody ...
    assert run_cli(config, "sync") == 1
    assert len(sink.messages) == sent
    assert "did not see 300 of 500" in capsys.readouterr().out
    # ... and then the guard judges what is confirmed.
    assert run_cli(config, "sync") == 1
    assert len(sink.messages) == sent
    out = capsys.readouterr()
    assert "would remove 300 of 500" in out.out + out.err
    assert "--allow-mass-removal" in out.out + out.err
    assert status_json(config)[1001]["last_run"]["status"] == "held"
    assert run_cli(config, "sync", "--allow-mass-removal") == 0
    assert len(sink.messages) == sent + 300
    assert_profiles_match(sim, sink, [MAIN])


def test_segment_down_then_back(config: Path, db_url: str, sim, sink, capsys) -> None:
    sink.faults.outage = True
    assert run_cli(config, "sync") == 1
    rows = member_rows(db_url, 1001)
    # An outage is the endpoint's fault: no row spends an attempt or waits beyond the next run.
    assert all(r["message_id"] and r["attempts"] == 0 for r in rows.values())
    assert all(r["next_attempt_at"] is None for r in rows.values())
    assert all(r["last_error"].startswith("outage: ") for r in rows.values())
    assert "503" in next(iter(rows.values()))["last_error"]
    assert sink.messages == []
    assert "partial" in capsys.readouterr().out
    status = status_json(config)[1001]
    assert status["last_run"]["status"] == "partial" and status["pending"] == 500
    [waiting] = status["waiting"]  # why they wait, and that they are due on the next run
    assert waiting["rows"] == 500 and waiting["next_attempt_at"] is None
    assert waiting["reason"].startswith("outage: Segment answered 503")
    capsys.readouterr()
    assert run_cli(config, "status") == 1  # a partial run: degraded
    assert "500 pending, outage: Segment answered 503" in capsys.readouterr().out
    sink.faults.reset()
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)


def test_segment_429_is_waited_out(config: Path, sim, sink, monkeypatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__MAX_BACKOFF_SECONDS", "5")
    sink.faults.rate_limit_next(2, retry_after=1)
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])


def test_rate_limit_past_budget_is_not_an_attempt(config: Path, db_url: str, sink) -> None:
    sink.faults.rate_limit_next(10_000, retry_after=3)  # longer than max_backoff_seconds = 2
    assert run_cli(config, "sync") == 1
    rows = member_rows(db_url, 1001)
    assert all(r["attempts"] == 0 and r["message_id"] for r in rows.values())
    assert all("rate limited" in r["last_error"] for r in rows.values())


def test_segment_timeouts_are_retried(config: Path, sim, sink, monkeypatch) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__TIMEOUT", "0.5")
    sink.faults.hang_next(1, seconds=1.5)
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])


def test_lost_acks_are_resent_under_the_same_ids(config: Path, db_url: str, sim, sink) -> None:
    sink.faults.lose_ack_next(10_000)  # every batch is kept, but no answer ever arrives
    assert run_cli(config, "sync") == 1
    kept = {m["messageId"] for m in sink.messages}
    # The pages the courier had gathered went as one batch, kept without an answer; then
    # the circuit opened.
    assert kept and len(kept) % 100 == 0
    assert all(r["attempts"] == 0 for r in member_rows(db_url, 1001).values())
    sink.faults.reset()
    assert run_cli(config, "sync") == 0
    sent = {m["messageId"] for m in sink.messages}
    assert kept <= sent and len(sent) == 500  # the kept ones went again under their ids
    assert_no_change_under_two_ids(sink.messages)
    assert_profiles_match(sim, sink, [MAIN])


def test_dead_rows_are_shown_retried_and_revived_by_change(
    config: Path, db_url: str, sim, sink, capsys
) -> None:
    poison = emails(sim, 3)
    sink.faults.poison.update(poison)  # Segment refuses any batch that holds one of these
    assert run_cli(config, "sync") == 1
    # Only the refused rows spend an attempt; every other row of their batches went out.
    assert len({m["messageId"] for m in sink.messages}) == 497
    for _ in range(2):  # max_attempts = 3
        time.sleep(0.25)  # the refused rows' backoff
        assert run_cli(config, "sync") == 1
    status = status_json(config)[1001]
    assert status["dead"] == 3 and status["pending"] == 0
    assert "rejected: Segment answered 400" in status["dead_rows"][0]["last_error"]
    assert status["last_run"]["status"] == "partial"  # dead rows are never `ok`
    sent = len(sink.messages)
    assert run_cli(config, "sync") == 1 and len(sink.messages) == sent  # dead rows wait
    # A change in Listrak revives one dead row with fresh values, without `retry`.
    sim.set_field(1001, poison[0], FIELD, "crm-fresh")
    sink.faults.reset()
    assert run_cli(config, "sync") == 1  # two rows are still dead
    fresh = [(m["anonymousId"], m["userId"]) for m in sink.messages[sent:]]
    assert fresh == [(poison[0], "crm-fresh")]
    capsys.readouterr()
    assert run_cli(config, "retry") == 0
    assert "2 dead message(s) re-queued" in capsys.readouterr().out
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])
    assert all(r["message_id"] is None for r in member_rows(db_url, 1001).values())


def test_endless_empty_pages_fail_the_scan_and_free_the_list(
    config: Path, sim, sink, db_url: str, monkeypatch
) -> None:
    assert run_cli(config, "sync") == 0
    sent = len(sink.messages)
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_EMPTY_PAGES", "3")
    sim.faults.empty_after_page = 1
    assert run_cli(config, "sync") == 1
    assert len(sink.messages) == sent  # an incomplete scan removes nobody
    last = status_json(config)[1001]["last_run"]
    assert last["status"] == "failed" and "3 empty pages in a row" in last["error"]
    assert lock_holders(db_url) == {}


def test_pages_repeating_their_contacts_fail_the_scan_and_sweep_nobody(
    config: Path, sim, sink, db_url: str, monkeypatch
) -> None:
    assert run_cli(config, "sync") == 0
    sent = len(sink.messages)
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "50")
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_PAGES", "40")
    sim.faults.repeat_after_page = 2
    assert run_cli(config, "sync") == 1
    assert len(sink.messages) == sent  # an incomplete scan removes nobody
    last = status_json(config)[1001]["last_run"]
    assert last["status"] == "failed" and "held only contacts" in last["error"]
    assert last["scanned"] <= 50 * 6
    assert lock_holders(db_url) == {}
