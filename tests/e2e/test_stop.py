"""Stopping is prompt: a stop signal abandons a wait on Listrak, and what is stored goes out."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from listrak_source.cli.wiring import run_context
from listrak_source.config import load_settings
from listrak_source.records import RunStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.subscribers.sync import sync_list

from .harness import (
    FIELD,
    assert_profiles_match,
    lock_holders,
    run_cli,
    run_statuses,
    worker,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}


class StopOnRetry(logging.Handler):
    """Sets `stop` the moment the client says it will wait before trying Listrak again."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self.stop = stop

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.stop.set()


@pytest.fixture
def stop_on_retry() -> Iterator[threading.Event]:
    stop = threading.Event()
    handler = StopOnRetry(stop)
    logger = logging.getLogger("listrak_source.listrak")
    logger.addHandler(handler)
    yield stop
    logger.removeHandler(handler)


def test_a_stop_during_a_retry_wait_delivers_what_is_stored(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    stop_on_retry: threading.Event,
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_ATTEMPTS", "5")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 300, field_id=FIELD, seed=12)
    sim.faults.die_after_page = 1  # the second page answers 500: the client backs off
    settings = load_settings(write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN]))
    with run_context(settings, stop=stop_on_retry) as ctx:
        result = sync_list(ctx, settings.lists[0])
    assert result.status == RunStatus.STOPPED
    assert result.scanned == 100 and result.delivered == 100 and result.pending == 0
    assert len(sink.messages) == 100
    assert [r.status for r in sim.requests].count(500) == 1, "the wait was not sat out"
    assert run_statuses(db_url, 1001) == ["stopped"]
    assert lock_holders(db_url) == {}


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_a_sync_waiting_out_retry_after(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, sig: signal.Signals
) -> None:
    if signal.getsignal(sig) == signal.SIG_IGN:
        pytest.skip(f"{sig.name} is ignored in this session, and so it would be in the worker")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 50, field_id=FIELD, seed=13)
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN])
    sim.faults.rate_limit_next(1, retry_after=120)
    log = tmp_path / "sync.log"
    proc = worker(config, "sync", log=log)
    try:
        deadline = time.monotonic() + 60
        while "retrying in 120" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(sig)
        # Nowhere near the 120 s Listrak asked for; the bound only guards against a hang.
        assert proc.wait(timeout=20) == 1, "a stopped scan is not a complete sync"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run_statuses(db_url, 1001) == ["stopped"], "no run left running"
    assert lock_holders(db_url) == {}
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])


def test_a_stop_signal_ends_a_wait_for_an_answer_that_trickles_in(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 50, field_id=FIELD, seed=14)
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN])
    sink.faults.trickle_next(1, 1.0)  # the batch is kept; its answer would take minutes
    log = tmp_path / "sync.log"
    proc = worker(config, "sync", log=log, env={"LISTRAK_SOURCE_SEGMENT__TIMEOUT": "3600"})
    try:
        deadline = time.monotonic() + 60
        while sink.message_count == 0 and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        # The bound only guards against a hang: the stop gives the request a short grace.
        assert proc.wait(timeout=40) == 1, "its messages wait for the next run"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "running" not in run_statuses(db_url, 1001)
    assert lock_holders(db_url) == {}
    assert run_cli(config, "sync") == 0  # sent again under the same ids; Segment drops copies
    assert_profiles_match(sim, sink, [MAIN])
