"""A list's trait is recorded; a rename is refused until it is migrated on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles

from .harness import FIELD, assert_no_change_under_two_ids, run_cli, status_json, write_config

OLD = {"id": 1001, "user_id_field": FIELD}
NEW = {**OLD, "trait": "listrak_list_{list_id}"}
OTHER = {"id": 1002}


@pytest.fixture
def seeded(sim: ListrakSimulator) -> ListrakSimulator:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 30, field_id=FIELD, seed=5)
    sim.add_list(1002, "Other")
    sim.seed(1002, 5, seed=6)
    return sim


def test_a_renamed_trait_is_refused_then_migrated_on_confirmation(
    tmp_path: Path,
    seeded: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = write_config(tmp_path / "old.toml", seeded, sink, db_url, [OLD, OTHER])
    assert run_cli(old, "sync") == 0
    left = sorted(seeded.truth(1001, FIELD))[0]
    seeded.unsubscribe(1001, left)
    assert run_cli(old, "sync") == 0
    new = write_config(tmp_path / "new.toml", seeded, sink, db_url, [NEW, OTHER])
    start = len(sink.messages)
    capsys.readouterr()

    assert run_cli(new, "sync") == 2
    out = capsys.readouterr().out
    assert "Listrak_list_1001" in out and "rename-trait --list 1001" in out
    assert "list 1002: ok" in out  # the other list still ran
    assert "rename-trait" in status_json(new)[1001]["last_run"]["error"]
    assert run_cli(new, "check") == 2
    assert "rename-trait --list 1001" in capsys.readouterr().out
    assert run_cli(new, "run") == 2  # the daemon refuses to start
    assert "rename-trait --list 1001" in capsys.readouterr().err

    assert run_cli(new, "rename-trait", "--list", "1001") == 1
    assert "29 subscriber(s)" in capsys.readouterr().out
    assert sink.messages[start:] == []

    assert run_cli(new, "rename-trait", "--list", "1001", "--confirm") == 0
    sent = sink.messages[start:]
    assert len(sent) == 29
    assert all(
        m["traits"]
        == {"email": m["traits"]["email"], "listrak_list_1001": True, "Listrak_list_1001": None}
        for m in sent
    )
    profiles = rebuild_profiles(sink.messages)
    for key in seeded.truth(1001, FIELD):
        assert profiles[key]["traits"]["listrak_list_1001"] is True
        assert "Listrak_list_1001" not in profiles[key]["traits"]
    assert not {"Listrak_list_1001", "listrak_list_1001"} & set(profiles[left]["traits"])
    assert_no_change_under_two_ids(sink.messages)

    start = len(sink.messages)
    assert run_cli(new, "sync") == 0
    assert sink.messages[start:] == []
    assert run_cli(old, "sync") == 2  # now the old name is the rename
