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
