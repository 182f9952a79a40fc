"""backfill re-sends every subscriber under fresh ids; baseline adopts Listrak, sends nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state.schema import runs

from ..service.test_daemon import query, wait_for
from .harness import (
    FIELD,
    assert_profiles_match,
    lock_holders,
    run_cli,
    status_json,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}
TRAIT_MAIN, TRAIT_OTHER = "Listrak_list_1001", "Listrak_list_1002"


@pytest.fixture
def config(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 40, field_id=FIELD, seed=1)
    sim.add_list(1002, "Other")
    sim.seed(1002, 20, seed=2)
    return write_config(tmp_path / "config.toml", sim, sink, db_url, [MAIN, OTHER])


def keyed(messages: list[dict], trait: str) -> dict[str, dict]:
    found = {m["anonymousId"].lower(): m for m in messages if trait in m["traits"]}
    assert len(found) == sum(1 for m in messages if trait in m["traits"]), "a contact sent twice"
    return found


def test_backfill_resends_every_subscriber_under_fresh_ids(config: Path, sim, sink) -> None:
    assert run_cli(config, "sync") == 0
    first_ids = {m["messageId"] for m in sink.messages}
    # Changed since the last sync: backfill's own scan records it like any sync would.
    leaver = sorted(sim.truth(1001))[0]
    sim.unsubscribe(1001, leaver)
    start = len(sink.messages)
    assert run_cli(config, "backfill", "--confirm") == 0
    sent = sink.messages[start:]
    main, other = keyed(sent, TRAIT_MAIN), keyed(sent, TRAIT_OTHER)
    truth = sim.truth(1001, FIELD)
    assert set(main) == set(truth) | {leaver} and set(other) == set(sim.truth(1002))
    assert main.pop(leaver)["traits"][TRAIT_MAIN] is None
    assert {m["traits"][TRAIT_MAIN] for m in main.values()} == {True}
    assert {m["traits"][TRAIT_OTHER] for m in other.values()} == {True}
    assert all(m.get("userId") == truth[k]["user_id"] for k, m in main.items())
    new_ids = [m["messageId"] for m in sent]
    assert len(set(new_ids)) == len(new_ids) and not set(new_ids) & first_ids
    assert_profiles_match(sim, sink, [MAIN, OTHER])
    # Backfill left nothing pending: the next sync has nothing to say.
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert sink.messages[start:] == []
    lists = status_json(config)
    assert lists[1001]["pending"] == 0 and lists[1001]["last_run"]["kind"] == "sync"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backfill_of_one_list(config: Path, sim, sink, capsys) -> None:
    assert run_cli(config, "sync") == 0
    start = len(sink.messages)
    capsys.readouterr()
    assert run_cli(config, "backfill", "--list", "1002", "--confirm") == 0
    sent = sink.messages[start:]
    assert len(sent) == len(sim.truth(1002))
    assert all(set(m["traits"]) == {"email", TRAIT_OTHER} for m in sent)
    out = capsys.readouterr().out
    assert out.startswith("list 1002: ok") and "list 1001" not in out
    lists = status_json(config)
    assert lists[1002]["last_run"]["kind"] == "backfill"
    assert lists[1001]["last_run"]["kind"] == "sync"


def test_baseline_adopts_listrak_and_sends_nothing(config: Path, sim, sink) -> None:
    assert run_cli(config, "baseline") == 0
    assert sink.messages == []
    lists = status_json(config)
    assert lists[1001]["subscribed"] == len(sim.truth(1001))
    assert lists[1001]["pending"] == lists[1002]["pending"] == 0
    assert lists[1001]["last_run"]["kind"] == "baseline"
    assert run_cli(config, "sync") == 0
    assert sink.messages == []
    # From here on, changes flow as usual.
    keys = sorted(sim.truth(1001, FIELD))
    sim.unsubscribe(1001, keys[0])
    sim.set_field(1001, keys[1], FIELD, "crm-after-baseline")
    sim.subscribe(1002, "New.One@Example.com")
    assert run_cli(config, "sync") == 0
    main, other = keyed(sink.messages, TRAIT_MAIN), keyed(sink.messages, TRAIT_OTHER)
    assert set(main) == {keys[0], keys[1]} and set(other) == {"new.one@example.com"}
    assert main[keys[0]]["traits"][TRAIT_MAIN] is None
    assert main[keys[1]]["userId"] == "crm-after-baseline"
    assert other["new.one@example.com"]["traits"][TRAIT_OTHER] is True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_baseline_of_one_list(config: Path, sim, sink) -> None:
    assert run_cli(config, "baseline", "--list", "1001") == 0
    assert run_cli(config, "sync") == 0
    # Only the list that was not baselined is sent, in full.
    assert keyed(sink.messages, TRAIT_MAIN) == {}
    assert set(keyed(sink.messages, TRAIT_OTHER)) == set(sim.truth(1002))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backfill_stopped_by_two_signals_leaves_the_list_free(
    tmp_path: Path, config: Path, sim, sink, db_url: str
) -> None:
    assert run_cli(config, "sync") == 0
    # A graceful stop would wait for the first batch, held this long by Segment.
    sink.faults.hang_next(1, 15)
    batches = sink.stats.requests
    log = tmp_path / "backfill.log"
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "listrak_source",
                "--config",
                str(config),
                "backfill",
                "--confirm",
            ],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env={
                **os.environ,
                "LISTRAK_SOURCE_LISTRAK__PAGE_SIZE": "10",
                "LISTRAK_SOURCE_SEGMENT__TIMEOUT": "60",
            },
        )
    try:
        wait_for(lambda: sink.stats.requests > batches, "backfill's delivery to be held up")
        assert lock_holders(db_url)
        proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "finishing the page" in log.read_text(), "the first signal")
        proc.send_signal(signal.SIGTERM)
        # The batch on the wire is given up once Segment drops it, well inside this bound.
        assert proc.wait(timeout=45) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
    # The interrupted run is on record as failed, and its list is free.
    assert lock_holders(db_url) == {}
    stopped = query(db_url, select(runs.c.status, runs.c.error).where(runs.c.kind == "backfill"))
    [(status, error)] = stopped
    assert status == "failed" and error.startswith("interrupted; 40 message(s) not yet")
    sim.faults.page_delay = 0
    sink.faults.reset()
    start = len(sink.messages)
    assert run_cli(config, "backfill", "--confirm") == 0
    assert len(sink.messages) - start == len(sim.truth(1001)) + len(sim.truth(1002))
