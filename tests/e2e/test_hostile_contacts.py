"""Hostile contact JSON and values the store cannot hold: per-contact rejects, never a list
that fails on every run, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import FIELD, assert_profiles_match, run_cli, status_json, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}


@pytest.fixture
def seeded(sim: ListrakSimulator) -> ListrakSimulator:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 20, field_id=FIELD, seed=7)
    sim.add_list(1002, "Other")
    sim.seed(1002, 5, seed=8)
    return sim


def test_a_state_that_is_not_a_string_is_a_reject_not_a_crash(
    tmp_path: Path,
    seeded: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for n, state in enumerate((["Subscribed"], {"a": 1}, 7, True)):
        seeded.add_raw(1001, {"emailAddress": f"odd{n}@example.com", "subscriptionState": state})
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN, OTHER])
    assert run_cli(config, "sync") == 1  # partial: four contacts skipped
    out = capsys.readouterr().out
    assert "list 1001: partial" in out and "list 1002: ok" in out
    assert status_json(config)[1001]["last_run"]["rejected"] == 4
    assert_profiles_match(seeded, sink, [MAIN, OTHER])


def test_values_the_store_cannot_hold_are_rejects_on_every_backend(
    tmp_path: Path,
    seeded: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dotted_i = "\u0130" * 200 + "@ex.com"  # 207 characters, 407 once lower-cased
    assert len(dotted_i) == 207 and len(dotted_i.lower()) == 407
    seeded.add_raw(1001, {"emailAddress": "nul\x00byte@example.com"})
    seeded.add_raw(1001, {"emailAddress": dotted_i})
    seeded.add_raw(1001, {"emailAddress": "lone\ud800@example.com"})
    seeded.add_raw(
        1001,
        {
            "emailAddress": "field@example.com",
            "segmentationFieldValues": [{"segmentationFieldId": FIELD, "value": "crm\x00x"}],
        },
    )
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN, OTHER])
    for _ in range(2):  # not a list that fails on every run
        assert run_cli(config, "sync") == 1
        out = capsys.readouterr().out
        assert "list 1001: partial" in out and "list 1002: ok" in out
        assert status_json(config)[1001]["last_run"]["rejected"] == 4
    assert_profiles_match(seeded, sink, [MAIN, OTHER])
    assert not any(
        "\x00" in m["anonymousId"] or "\u0130" in m["anonymousId"] for m in sink.messages
    )
