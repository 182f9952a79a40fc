"""kill -9 at random instants, each followed at once by the next run: nothing lost, nothing
sent under two ids, and never a list left locked by the dead."""

from __future__ import annotations

import random
import time
from pathlib import Path

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    worker,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
# Small pages and chunks give many commit points to land a kill between.
SMALL = {
    "LISTRAK_SOURCE_LISTRAK__PAGE_SIZE": "250",
    "LISTRAK_SOURCE_SEGMENT__CHUNK_SIZE": "400",
}
KILLS = 10


def mutate(sim: ListrakSimulator, rng: random.Random, round_no: int) -> None:
    """A few of every kind of change, as Listrak would see between (or during) runs."""
    truth = sim.truth(1001, FIELD)
    picks = rng.sample(sorted(truth), 40)
    for key in picks[:10]:
        sim.unsubscribe(1001, str(truth[key]["email"]))
    for key in picks[10:20]:
        sim.remove(1001, str(truth[key]["email"]))
    for key in picks[20:30]:
        sim.set_field(1001, str(truth[key]["email"]), FIELD, f"crm-{round_no}-{key}")
    for n in range(10):
        sim.subscribe(1001, f"late{round_no}.{n}@example.com", {FIELD: f"crm-late-{n}"})


def finish(config: Path, log: Path) -> None:
    """Run to completion at the first try: a killed worker's lock died with it."""
    proc = worker(config, "sync", env=SMALL, log=log)
    assert proc.wait(timeout=120) == 0, f"sync did not complete; see {log}"


def test_kill_9_at_random_instants_loses_nothing(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    rng = random.Random(20261123)
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 3000, field_id=FIELD, seed=5)
    sim.faults.page_delay = 0.01
    config = write_config(tmp_path / "config.toml", sim, sink, db_url, [MAIN])
    log = tmp_path / "worker.log"
    for round_no in range(KILLS):
        proc = worker(config, "sync", env=SMALL, log=log)
        delay = rng.uniform(0.3, 2.5)
        time.sleep(delay / 2)
        if round_no % 3 == 1:
            mutate(sim, rng, round_no)  # while the worker scans
        time.sleep(delay / 2)
        proc.kill()
        proc.wait()
        # No pause: the next worker starts at once, and must find the list free.
    finish(config, log)
    assert "being synced by" not in log.read_text(), "a killed worker's lock outlived it"
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)
    received = len(sink.messages)
    finish(config, log)
    assert len(sink.messages) == received, "a clean second run must send nothing"
