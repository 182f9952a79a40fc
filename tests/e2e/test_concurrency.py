"""Leases: two workers never work one list at once; a dead holder's lease is taken over."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.exc import DBAPIError

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import Database, make_engine, upgrade
from listrak_source.state.schema import leases

from .harness import FIELD, assert_profiles_match, run_cli, worker, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}
SLOW = {"LISTRAK_SOURCE_LISTRAK__PAGE_SIZE": "100"}


def setup(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 1000, field_id=FIELD, seed=9)
    return write_config(
        tmp_path / "c.toml", sim, sink, db_url, [MAIN], extra='[delivery]\nlease_ttl = "2s"\n'
    )


def wait_for_lease(db_url: str) -> str:
    engine = create_engine(db_url)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            try:
                with engine.connect() as conn:
                    holder = conn.execute(leases.select()).mappings().first()
            except DBAPIError:  # the worker has not created the tables yet
                holder = None
            if holder:
                return str(holder["holder"])
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise AssertionError("the first worker never took the lease")


def test_second_sync_skips_a_list_in_use(tmp_path, sim, sink, db_url, capsys) -> None:
    config = setup(tmp_path, sim, sink, db_url)
    sim.faults.page_delay = 0.2  # ten pages: about two seconds of scanning
    first = worker(config, "sync", env=SLOW, log=tmp_path / "first.log")
    holder = wait_for_lease(db_url)
    assert run_cli(config, "sync") == 1
    out = capsys.readouterr()
    assert f"list 1001 is being synced by {holder}; skipped" in out.out + out.err
    assert first.wait(timeout=60) == 0
    assert_profiles_match(sim, sink, [MAIN])
    assert len(sink.messages) == 1000


def test_killed_holders_lease_expires_and_is_taken_over(tmp_path, sim, sink, db_url) -> None:
    config = setup(tmp_path, sim, sink, db_url)
    sim.faults.page_delay = 0.2
    first = worker(config, "sync", env=SLOW, log=tmp_path / "first.log")
    wait_for_lease(db_url)
    first.kill()
    first.wait()
    assert run_cli(config, "sync") == 1  # still held: the holder cannot say it died
    time.sleep(2.1)
    sim.faults.page_delay = 0
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])


def test_ledger_lease_rules(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    ledger = Database(engine)
    now = datetime.now(UTC)
    ttl = timedelta(seconds=60)
    assert ledger.leases.acquire(1, "a", now, ttl) is None
    assert ledger.leases.acquire(1, "b", now, ttl) == "a"
    assert ledger.leases.acquire(1, "a", now, ttl) is None  # re-entrant for its holder
    assert ledger.leases.renew(1, "a", now, ttl) and not ledger.leases.renew(1, "b", now, ttl)
    later = now + timedelta(seconds=61)
    assert ledger.leases.acquire(1, "b", later, ttl) is None  # expired: taken over
    assert not ledger.leases.renew(1, "a", later, ttl)  # the old holder learns it lost the list
    ledger.leases.release(1, "a")  # releasing a lease one no longer holds does nothing
    assert ledger.leases.acquire(1, "c", later, ttl) == "b"
    assert ledger.leases.acquire(2, "c", later, ttl) is None  # leases are per list
    engine.dispose()
