"""A list's trait is recorded; a rename is refused until it is migrated on purpose."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles
from listrak_source.state import Database, make_engine

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


SHARED = "shared@example.com"


def _two_lists(sim: ListrakSimulator, *ids: int) -> None:
    for list_id in ids:
        sim.add_list(list_id, f"L{list_id}")
        sim.subscribe(list_id, SHARED)
        sim.subscribe(list_id, f"only{list_id}@example.com")


def _lists(**traits: str) -> list[dict[str, Any]]:
    return [{"id": int(key[1:]), "trait": trait} for key, trait in traits.items()]


def test_a_name_one_list_gives_up_is_taken_by_another_only_once_its_rename_is_delivered(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _two_lists(sim, 1001, 1002)
    cfg = functools.partial(write_config, sim=sim, sink=sink, db_url=db_url)
    assert run_cli(cfg(tmp_path / "a.toml", lists=_lists(l1001="alpha", l1002="beta")), "sync") == 0
    # 1002 is to take the name 1001 gives up. Taken at once, 1001's messages would go on
    # carrying alpha, then nulling it, on the contact 1002 sets it on.
    swap = cfg(tmp_path / "b.toml", lists=_lists(l1001="gamma", l1002="alpha"))
    start = len(sink.messages)
    capsys.readouterr()
    assert run_cli(swap, "rename-trait", "--list", "1002", "--confirm") == 2
    assert "list 1001's messages still carry" in capsys.readouterr().err
    assert run_cli(swap, "rename-trait", "--list", "1002") == 2  # the preview says so too
    assert "still carry" in capsys.readouterr().err
    assert sink.messages[start:] == []

    sink.faults.outage = True  # 1001's rename waits, and with it the name it gives up
    assert run_cli(swap, "rename-trait", "--list", "1001", "--confirm") == 1
    sink.faults.reset()
    capsys.readouterr()
    assert run_cli(swap, "rename-trait", "--list", "1002", "--confirm") == 2
    assert "list 1001 still removes" in capsys.readouterr().err
    assert run_cli(swap, "check") == 2
    assert "list 1001 still removes" in capsys.readouterr().out
    assert run_cli(swap, "sync") == 2  # delivers 1001's rename; 1002 still waits for its own
    assert run_cli(swap, "rename-trait", "--list", "1002", "--confirm") == 0
    assert run_cli(swap, "sync") == 0

    profiles = rebuild_profiles(sink.messages)
    assert profiles[SHARED]["traits"] == {"email": SHARED, "gamma": True, "alpha": True}
    assert profiles["only1001@example.com"]["traits"] == {
        "email": "only1001@example.com",
        "gamma": True,
    }
    assert profiles["only1002@example.com"]["traits"] == {
        "email": "only1002@example.com",
        "alpha": True,
    }


def _rename_waiting(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    """List 1001 synced as alpha, then renamed gamma while Segment is down, so its messages
    still remove alpha; list 1003 never ran. The config naming 1003 alpha beside it."""
    _two_lists(sim, 1001, 1003)
    cfg = functools.partial(write_config, sim=sim, sink=sink, db_url=db_url)
    assert run_cli(cfg(tmp_path / "a.toml", lists=_lists(l1001="alpha")), "sync") == 0
    both = cfg(tmp_path / "b.toml", lists=_lists(l1001="gamma", l1003="alpha"))
    sink.faults.outage = True
    assert run_cli(both, "rename-trait", "--list", "1001", "--confirm") == 1
    sink.faults.reset()
    return both


def test_a_new_list_waits_for_the_name_another_list_still_removes(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    both = _rename_waiting(tmp_path, sim, sink, db_url)
    sink.faults.lose_ack_next(10_000)  # Segment keeps them; the worker cannot know
    capsys.readouterr()
    start = len(sink.messages)
    assert run_cli(both, "sync") == 2
    assert "list 1001 still removes" in capsys.readouterr().out
    assert not any(m["traits"].get("alpha") for m in sink.messages[start:])
    sink.faults.reset()
    assert run_cli(both, "sync") == 0  # 1001 delivers, then 1003 takes alpha

    profiles = rebuild_profiles(sink.messages)
    assert profiles[SHARED]["traits"] == {"email": SHARED, "gamma": True, "alpha": True}
    assert profiles["only1003@example.com"]["traits"]["alpha"] is True


def test_rename_trait_of_a_list_that_never_ran_says_when_its_name_is_held(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    both = _rename_waiting(tmp_path, sim, sink, db_url)
    capsys.readouterr()
    assert run_cli(both, "rename-trait", "--list", "1003", "--confirm") == 2
    assert "list 1001 still removes" in capsys.readouterr().err


def test_check_finds_a_name_one_list_removes_while_another_carries_it(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A state recorded before names were checked: 1003 took alpha while 1001's rename
    still removed it."""
    both = _rename_waiting(tmp_path, sim, sink, db_url)
    engine = make_engine(db_url)
    try:
        Database(engine).traits.adopt(1003, "alpha")  # as the unchecked code recorded it
    finally:
        engine.dispose()
    capsys.readouterr()
    assert run_cli(both, "check") == 2
    out = capsys.readouterr().out
    assert "list 1001: its rename still removes alpha" in out and "backfill --list 1003" in out
