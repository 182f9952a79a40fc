"""No address in status, status --json or the logs: contacts are named by a short stable
reference, and `lookup` finds one from an address the operator supplies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from listrak_source.privacy import contact_ref
from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import FIELD, run_cli, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}


def test_status_and_logs_name_contacts_by_reference_only(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 3, field_id=FIELD, seed=13)
    sim.add_raw(1001, {"emailAddress": "Skipped@Example.com", "subscriptionState": "Pending"})
    extra = "[delivery]\nmax_attempts = 1\n"
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN], extra=extra)
    dead = sorted(sim.truth(1001, FIELD))[0]
    sink.faults.poison = {dead}  # Segment refuses it alone: dead after its one attempt
    assert run_cli(config, "sync") == 1
    shown = capsys.readouterr()
    assert "@example.com" not in shown.out.lower() + shown.err.lower()
    # Dead rows: degraded.
    assert run_cli(config, "status") == 1
    assert run_cli(config, "status", "--json") == 1
    status = capsys.readouterr().out
    assert "@example.com" not in status.lower()
    assert contact_ref("skipped@example.com") in status
    assert contact_ref(dead) in status

    assert run_cli(config, "lookup", "SKIPPED@example.com", dead) == 0
    found = capsys.readouterr().out
    assert "@example.com" not in found.lower()
    assert f"contact {contact_ref('skipped@example.com')}" in found
    assert "skipped: unknown subscriptionState 'Pending'" in found
    assert f"contact {contact_ref(dead)}" in found and "dead after 1 attempt" in found


def test_the_reference_is_short_stable_and_ignores_case_and_spaces() -> None:
    ref = contact_ref("Ann@Example.com")
    assert ref == contact_ref(" ann@example.com ") and len(ref) == 12
    assert ref != contact_ref("bob@example.com")
    assert json.dumps(ref) == f'"{ref}"'


def test_lookup_shows_no_old_skip_and_says_why_a_refused_row_waits(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 4, field_id=FIELD, seed=13)
    fixed, refused = sorted(sim.truth(1001, FIELD))[:2]
    sim.override(1001, fixed, {"subscriptionState": "Pending"})
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 1
    assert run_cli(config, "lookup", fixed) == 0
    assert "skipped: unknown subscriptionState 'Pending' (run 1)" in capsys.readouterr().out
    sim.clear_override(1001, fixed)  # corrected in Listrak: the next scan syncs it
    sim.unsubscribe(1001, refused)
    sink.faults.poison.add(refused)  # and Segment refuses its removal
    assert run_cli(config, "sync") == 1
    capsys.readouterr()
    assert run_cli(config, "lookup", fixed, refused) == 0
    found = capsys.readouterr().out.splitlines()
    assert found[0] == f"contact {contact_ref(fixed)}: list 1001: subscribed; delivered"
    assert found[1].startswith(
        f"contact {contact_ref(refused)}: list 1001: not subscribed; waiting to be delivered "
        "after 1 refusal(s) (rejected: Segment answered 400 (invalid_request): A message of the "
        "batch was refused; next attempt 20"
    )
