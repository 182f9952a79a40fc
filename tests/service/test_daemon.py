"""The daemon as systemd runs it: a subprocess on a 1 s schedule, metrics, sd_notify, signals."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select
from sqlalchemy.exc import OperationalError, ProgrammingError

from listrak_source.cli.health import next_run
from listrak_source.cli.wiring import build_daemon, run_context
from listrak_source.config import Settings, load_settings
from listrak_source.errors import ConfigError, RanRecentlyError
from listrak_source.records import RunKind, RunStatus
from listrak_source.service.daemon import trigger_for
from listrak_source.service.schedules import (
    crontab_trigger,
    crontab_weekdays,
    describe,
    list_schedule,
    period,
)
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import make_engine, upgrade
from listrak_source.state.schema import runs
from listrak_source.subscribers.sync import sync_list

from ..e2e.harness import (
    FIELD,
    assert_profiles_match,
    lock_holders,
    run_cli,
    status_json,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}
T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str, timeout: float = 20.0) -> T:
    """Poll until check() is truthy; the deadline only bounds a hang, it asserts no speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Notifications:
    """A real AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(self.path)
        self._sock.settimeout(0.1)
        self._lines: list[str] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            self._lines.extend(data.decode().splitlines())

    def states(self) -> list[str]:
        return list(self._lines)

    def close(self) -> None:
        self._closed.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notifications]:
    receiver = Notifications(tmp_path / "notify.sock")
    yield receiver
    receiver.close()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `listrak-source run`; whatever a test leaves running is killed afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def start(config: Path, **env: str) -> subprocess.Popen[bytes]:
        with (tmp_path / "daemon.log").open("ab") as log:
            # No --log-format: a file is not a terminal, so the default must be JSON.
            proc = subprocess.Popen(
                [sys.executable, "-m", "listrak_source", "--config", str(config), "run"],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, **env},
            )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def daemon_config(
    tmp_path: Path, sim, sink, url: str, lists: list[dict], *, metrics_port: int | None = None
) -> Path:
    extra = '[schedule]\ninterval = "1s"\n'
    if metrics_port is not None:
        extra += f"[metrics]\nport = {metrics_port}\n"
    return write_config(tmp_path / "config.toml", sim, sink, url, lists, extra=extra)


def query(url: str, statement: Any) -> list[Any]:
    """Rows, or none while the daemon has not yet created its tables."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(statement).all())
    except (OperationalError, ProgrammingError):
        return []
    finally:
        engine.dispose()


def finished_runs(url: str, list_id: int) -> list[str]:
    stmt = (
        select(runs.c.status)
        .where(runs.c.list_id == list_id, runs.c.finished_at.is_not(None))
        .order_by(runs.c.id)
    )
    return [status for (status,) in query(url, stmt)]


def assert_runs_ok(url: str, list_id: int) -> None:
    """Every run succeeded; the last may have been cut short by the signal, but not failed."""
    statuses = finished_runs(url, list_id)
    assert set(statuses[:-1]) == {"ok"} and statuses[-1] != "failed", statuses


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def metric(samples: dict, name: str, **labels: str) -> float:
    return samples[(f"listrak_source_{name}", tuple(sorted(labels.items())))]


def log_lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()]


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    return proc.wait(timeout=20)


def test_daemon_syncs_on_schedule_and_stops_cleanly(
    tmp_path: Path, sim, sink, notify, start_daemon, capsys
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'state.db'}"
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 40, field_id=FIELD, seed=1)
    sim.add_list(1002, "Other")
    sim.seed(1002, 20, seed=2)
    port = free_port()
    config = daemon_config(tmp_path, sim, sink, sqlite_url, [MAIN, OTHER], metrics_port=port)
    began = time.time()
    proc = start_daemon(config, NOTIFY_SOCKET=notify.path, WATCHDOG_USEC="200000")
    wait_for(lambda: "READY=1" in notify.states(), "READY=1")
    wait_for(lambda: len(sink.messages) == 60, "the first run of each list")
    wait_for(
        lambda: min(len(finished_runs(sqlite_url, i)) for i in (1001, 1002)) >= 3, "three runs"
    )
    # Between runs, Listrak changes; a later run sends exactly that.
    keys = sorted(sim.truth(1001))
    sim.unsubscribe(1001, keys[0])
    sim.subscribe(1001, "Daemon.New@Example.com", {FIELD: "crm-daemon"})
    wait_for(lambda: len(sink.messages) == 62, "the change to arrive")
    assert {m["anonymousId"].lower() for m in sink.messages[60:]} == {
        keys[0],
        "daemon.new@example.com",
    }
    assert_profiles_match(sim, sink, [MAIN, OTHER])

    samples = wait_for(
        lambda: (
            (s := scrape(port))
            and sum(metric(s, "messages_delivered_total", list_id=str(i)) for i in (1001, 1002))
            == 62
            and s
        ),
        "metrics to count the change",
    )
    assert metric(samples, "contacts_scanned_total", list_id="1001") >= 3 * 40
    assert metric(samples, "changes_total", list_id="1001", kind="subscribed") == 41
    assert metric(samples, "changes_total", list_id="1001", kind="unsubscribed") == 1
    assert metric(samples, "changes_total", list_id="1002", kind="user_id") == 0
    assert metric(samples, "messages_failed_total", list_id="1001") == 0
    assert metric(samples, "messages_dead", list_id="1001") == 0
    assert metric(samples, "messages_pending", list_id="1002") == 0
    assert metric(samples, "runs_total", list_id="1002", status="ok") >= 3
    assert metric(samples, "run_duration_seconds_count", list_id="1001") >= 3
    assert metric(samples, "last_success_timestamp_seconds", list_id="1001") >= int(began)

    assert stop(proc) == 0
    states = notify.states()
    assert states.index("READY=1") < states.index("STOPPING=1")
    assert "WATCHDOG=1" in states
    assert any(s.startswith("STATUS=last run: list 1001") for s in states)
    for list_id in (1001, 1002):
        assert_runs_ok(sqlite_url, list_id)
        assert status_json(config)[list_id]["pending"] == 0
    capsys.readouterr()
    # Healthy, or failing once a list of a seconds-long interval is overdue with the daemon
    # gone; degraded instead of healthy when the signal cut a run short.
    cut_short = any(finished_runs(sqlite_url, i)[-1] == "stopped" for i in (1001, 1002))
    code = run_cli(config, "status")
    out = capsys.readouterr().out
    assert code in ((1, 2) if cut_short else (0, 2)), out
    header, *table = out.splitlines()
    assert header.startswith("LIST  LAST RUN") and header.endswith("NEXT RUN")
    row = table[0].split()
    assert row[0] == "1001" and row[4:7] == ["40", "0", "0"] and "T" in row[7]
    lines = log_lines(tmp_path)
    done = [line for line in lines if line["msg"].startswith("list 1001: ok")]
    assert len(done) >= 3
    assert all(line["list_id"] == 1001 and isinstance(line["run_id"], int) for line in done)
    assert lines[-1]["msg"] == "stopped cleanly"


@pytest.mark.postgres
def test_daemon_on_postgres_stops_on_sigint(
    tmp_path: Path, sim, sink, postgres_url: str, start_daemon
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 30, field_id=FIELD, seed=3)
    config = daemon_config(tmp_path, sim, sink, postgres_url, [MAIN])
    proc = start_daemon(config)
    wait_for(lambda: len(finished_runs(postgres_url, 1001)) >= 2, "two runs")
    sim.remove(1001, sorted(sim.truth(1001))[0])
    wait_for(lambda: len(sink.messages) == 31, "the removal to arrive")
    assert stop(proc, signal.SIGINT) == 0
    assert_profiles_match(sim, sink, [MAIN])
    assert_runs_ok(postgres_url, 1001)
    assert status_json(config)[1001]["pending"] == 0


def change_every_user_id(sim: ListrakSimulator) -> None:
    for n, email in enumerate(sorted(sim.truth(1001))):
        sim.set_field(1001, email, FIELD, f"crm-new-{n}")


def test_sigterm_mid_scan_finishes_the_page_and_delivers(
    tmp_path: Path, sim, sink: SegmentSink, sqlite_url: str, start_daemon
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 83, field_id=FIELD, seed=4)
    config = daemon_config(tmp_path, sim, sink, sqlite_url, [MAIN])
    assert run_cli(config, "sync") == 0
    change_every_user_id(sim)
    gone = sorted(sim.truth(1001))[-3:]
    for email in gone:
        sim.remove(1001, email)  # only a sweep, after a complete scan, may send these
    sim.faults.page_delay = 0.3
    pages, start = sim.stats.pages, len(sink.messages)
    proc = start_daemon(config, LISTRAK_SOURCE_LISTRAK__PAGE_SIZE="10")
    wait_for(lambda: sim.stats.pages >= pages + 2, "the scan to be under way")
    assert stop(proc) == 0
    sent = sink.messages[start:]
    last = status_json(config)[1001]
    # The pages received are stored and sent; the one still on its way is abandoned.
    assert 10 <= len(sent) < 80 and len(sent) % 10 == 0, "whole pages, not the whole list"
    assert last["last_run"]["scanned"] == len(sent) and last["pending"] == 0
    assert all(m["userId"].startswith("crm-new-") for m in sent)
    assert {m["traits"]["Listrak_list_1001"] for m in sent} == {True}, "swept after a stop"
    # Lines logged inside the run carry its ids, so an operator can follow one run.
    (cut,) = [line for line in log_lines(tmp_path) if "scan is incomplete" in line["msg"]]
    assert cut["list_id"] == 1001 and cut["run_id"] == last["last_run"]["id"]
    # The next run picks up the rest, and now sweeps.
    sim.faults.page_delay = 0
    assert run_cli(config, "sync") == 0
    removed = [m for m in sink.messages[start:] if m["traits"]["Listrak_list_1001"] is None]
    assert sorted(m["anonymousId"].lower() for m in removed) == gone
    assert_profiles_match(sim, sink, [MAIN])


def test_second_signal_exits_at_once_and_frees_the_list(
    tmp_path: Path, sim, sink, sqlite_url: str, start_daemon
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 30, field_id=FIELD, seed=5)
    config = daemon_config(tmp_path, sim, sink, sqlite_url, [MAIN])
    assert run_cli(config, "sync") == 0
    change_every_user_id(sim)
    sink.faults.hang_next(100, 30)  # delivery would hold a graceful stop for this long
    batches = sink.stats.requests
    proc = start_daemon(config, LISTRAK_SOURCE_SEGMENT__TIMEOUT="60")
    wait_for(lambda: sink.stats.requests > batches, "delivery to be held up")
    assert lock_holders(sqlite_url)
    proc.send_signal(signal.SIGTERM)
    wait_for(
        lambda: any("finishing the page" in line["msg"] for line in log_lines(tmp_path)),
        "the first signal to be handled",
    )
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 128 + signal.SIGTERM
    assert lock_holders(sqlite_url) == {}, "the list's lock outlived the process"
    # Nothing half-done remains: a sync right away delivers every change, once.
    sink.faults.reset()
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert len(sink.messages) - start == 30
    assert_profiles_match(sim, sink, [MAIN])
    assert finished_runs(sqlite_url, 1001) == ["ok", "failed", "ok"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_cuts_a_retry_after_wait_short(
    tmp_path: Path, sim, sink, sqlite_url: str, start_daemon, sig: signal.Signals
) -> None:
    if signal.getsignal(sig) == signal.SIG_IGN:
        pytest.skip(f"{sig.name} is ignored in this session, and so it would be in the daemon")
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 30, field_id=FIELD, seed=7)
    config = daemon_config(tmp_path, sim, sink, sqlite_url, [MAIN])
    sim.faults.rate_limit_next(1, retry_after=120)
    proc = start_daemon(config)
    wait_for(
        lambda: any("retrying in 120" in line["msg"] for line in log_lines(tmp_path)),
        "the run to wait out Retry-After",
    )
    # Well inside systemd's TimeoutStopSec, and nowhere near the 120 s Listrak asked for.
    assert stop(proc, sig) == 0
    assert finished_runs(sqlite_url, 1001) == ["stopped"], "no run left running"
    assert lock_holders(sqlite_url) == {}
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])


FLEET = [{"id": n} for n in (2001, 2002, 2003, 2004)]


def run_starts(url: str, list_id: int) -> list[datetime]:
    stmt = select(runs.c.started_at).where(runs.c.list_id == list_id).order_by(runs.c.id)
    return [started for (started,) in query(url, stmt)]


@pytest.mark.postgres
def test_a_fleet_shares_the_lists_and_takes_over_from_a_dead_daemon(
    tmp_path: Path, sim, sink, postgres_url: str, start_daemon
) -> None:
    for n, item in enumerate(FLEET):
        sim.add_list(item["id"], f"Fleet {n}")
        sim.seed(item["id"], 20, seed=20 + n)
    extra = '[schedule]\ninterval = "2s"\n'
    config = write_config(tmp_path / "fleet.toml", sim, sink, postgres_url, FLEET, extra=extra)
    assert run_cli(config, "migrate") == 0
    first, second = start_daemon(config), start_daemon(config)
    ids = [item["id"] for item in FLEET]
    wait_for(lambda: all(len(run_starts(postgres_url, i)) >= 4 for i in ids), "shared runs", 60)
    first.kill()  # kill -9: no clean-up at all
    first.wait()
    counts = {i: len(run_starts(postgres_url, i)) for i in ids}
    wait_for(
        lambda: all(len(run_starts(postgres_url, i)) >= counts[i] + 2 for i in ids),
        "the survivor to run every list",
        60,
    )
    assert stop(second) == 0
    for list_id in ids:
        starts = run_starts(postgres_url, list_id)
        statuses = finished_runs(postgres_url, list_id)
        assert len(statuses) == len(starts), "a run was left running"
        # Two daemons firing every 2 s would start a list about once a second; shared, the
        # list runs about once per interval, never sooner than 80 % of it after the last run
        # that did its job (the killed daemon's run did not: the survivor need not wait).
        gaps = [
            (b - a).total_seconds()
            for (a, b), status in zip(itertools.pairwise(starts), statuses, strict=False)
            if status != "failed"
        ]
        assert min(gaps) >= 1.6 - 0.01, (list_id, gaps)
        assert statuses.count("failed") <= 1, "only a run the killed daemon had under way"
    assert len(sink.messages) == 80, "every contact sent once across the fleet"
    assert_profiles_match(sim, sink, FLEET)


# In process: the schedule, health and failure accounting, without a subprocess.


def settings_for(tmp_path: Path, sim, sink, lists: list[dict], extra: str = "") -> Settings:
    url = f"sqlite:///{tmp_path / 'unit.db'}"
    return load_settings(write_config(tmp_path / "unit.toml", sim, sink, url, lists, extra=extra))


def test_short_interval_gets_small_jitter(tmp_path: Path, sim, sink) -> None:
    settings = settings_for(tmp_path, sim, sink, [MAIN], '[schedule]\ninterval = "1s"')
    trigger = trigger_for(settings.lists[0], settings)
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == timedelta(seconds=1) and trigger.jitter == pytest.approx(0.1)
    settings = settings_for(tmp_path, sim, sink, [MAIN])  # the default 15m: jitter capped
    assert trigger_for(settings.lists[0], settings).jitter == 30


def test_per_list_schedule_overrides_the_global_one(tmp_path: Path, sim, sink) -> None:
    lists = [{"id": 1, "interval": "5m"}, {"id": 2}, {"id": 3, "cron": "0 6 * * *"}]
    settings = settings_for(tmp_path, sim, sink, lists, '[schedule]\ncron = "*/15 * * * *"')
    first, second, third = (trigger_for(cfg, settings) for cfg in settings.lists)
    assert isinstance(first, IntervalTrigger) and first.interval == timedelta(minutes=5)
    assert isinstance(second, CronTrigger) and str(second.fields[6]) == "*/15"
    assert isinstance(third, CronTrigger) and str(third.fields[5]) == "6"
    bad = settings_for(tmp_path, sim, sink, [{"id": 4, "cron": "61 * * * *"}])
    with pytest.raises(ConfigError, match="list 4: schedule cron"):
        trigger_for(bad.lists[0], bad)


def test_cron_weekdays_count_from_sunday_as_crontab_does() -> None:
    # APScheduler 3 counts Monday as 0: "1-5" must still mean Monday to Friday.
    trigger = crontab_trigger("0 9 * * 1-5")
    saturday = datetime(2026, 1, 3, 12, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, saturday)
    assert fire.strftime("%a %H:%M") == "Mon 09:00"
    assert crontab_weekdays("0") == crontab_weekdays("7") == "sun"
    assert crontab_weekdays("5-7") == "sun,fri,sat"
    assert crontab_weekdays("*/2") == "sun,tue,thu,sat"
    assert crontab_weekdays("mon,WED") == "mon,wed"
    assert crontab_weekdays("0-6") == "*"
    for bad in ("8", "5-1", "*/0", "fri-mon", "L"):
        with pytest.raises(ValueError):
            crontab_weekdays(bad)


def test_watchdog_health(tmp_path: Path, sim, sink) -> None:
    settings = settings_for(tmp_path, sim, sink, [MAIN])
    now = [1000.0]
    daemon = build_daemon(settings, make_engine(settings.database.url), clock=lambda: now[0])
    assert not daemon.healthy()  # the scheduler is not running yet
    daemon.scheduler.start(paused=True)
    try:
        assert daemon.healthy()
        daemon._mark(1001)  # a run in progress, just now
        now[0] += settings.schedule.stall_timeout.total_seconds()
        assert daemon.healthy()
        now[0] += 1  # silent for longer than its lease: hung
        assert not daemon.healthy()
        daemon._mark(1001)  # it made progress again
        assert daemon.healthy()
    finally:
        daemon.scheduler.shutdown()
    daemon.stop.set()
    assert daemon.healthy(), "a stopping daemon keeps pinging while it finishes"


def test_a_run_that_raises_is_counted_and_the_daemon_lives_on(
    tmp_path: Path, sim, sink, monkeypatch
) -> None:
    settings = settings_for(tmp_path, sim, sink, [MAIN])
    engine = make_engine(settings.database.url)
    upgrade(engine)
    daemon = build_daemon(settings, engine)

    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr("listrak_source.service.daemon.sync_list", explode)
    daemon.run_list(settings.lists[0])
    failed = daemon.metrics.runs.labels(list_id="1001", status="failed")
    assert failed._value.get() == 1
    assert daemon._active == {}
    daemon.stop.set()
    daemon.run_list(settings.lists[0])  # after a stop, a due run does not start
    assert failed._value.get() == 1
    engine.dispose()


def test_run_stopped_mid_scan_is_not_recorded_as_ok(tmp_path: Path, sim, sink) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 30, field_id=FIELD, seed=6)
    settings = settings_for(tmp_path, sim, sink, [MAIN])
    small = settings.listrak.model_copy(update={"page_size": 10})
    settings = settings.model_copy(update={"listrak": small})
    stop = threading.Event()
    # As SIGTERM does mid-scan: the first page's progress asks the run to stop.
    with run_context(settings, stop=stop, on_progress=lambda _stage, _count: stop.set()) as ctx:
        result = sync_list(ctx, settings.lists[0])
    assert result.scanned == 10 and len(sink.messages) == 10
    assert result.status != "ok"


def test_one_job_per_list_coalesced_and_cron_waits_for_its_time(tmp_path: Path, sim, sink) -> None:
    lists = [{"id": 1001}, {"id": 1002, "cron": "30 4 * * *"}]
    settings = settings_for(tmp_path, sim, sink, lists, '[schedule]\ninterval = "10m"')
    engine = make_engine(settings.database.url)
    upgrade(engine)
    daemon = build_daemon(settings, engine)
    daemon.scheduler.start(paused=True)
    try:
        daemon.schedule({cfg.id: trigger_for(cfg, settings) for cfg in settings.lists})
        interval, cron = (daemon.scheduler.get_job(f"list-{i}") for i in (1001, 1002))
        for job in (interval, cron):
            assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time is None
        now = datetime.now(UTC)
        assert interval.next_run_time <= now + timedelta(seconds=2)  # soon after start
        assert cron.next_run_time.strftime("%H:%M") == "04:30"
    finally:
        daemon.scheduler.shutdown()
        engine.dispose()


def test_metrics_port_in_use_is_a_config_error(tmp_path: Path, sim, sink) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        extra = f"[metrics]\nport = {port}"
        settings = settings_for(tmp_path, sim, sink, [MAIN], extra)
        engine = make_engine(settings.database.url)
        upgrade(engine)
        daemon = build_daemon(settings, engine)
        with pytest.raises(ConfigError, match=f"metrics.port: cannot serve on {port}"):
            daemon.serve_forever(install_signals=False)
        engine.dispose()


def test_list_with_both_interval_and_cron_is_rejected(tmp_path: Path, sim, sink) -> None:
    both = {"id": 1001, "interval": "5m", "cron": "0 * * * *"}
    with pytest.raises(ConfigError, match=r"lists\[0\]"):
        settings_for(tmp_path, sim, sink, [both])


def test_schedules_read_as_written(tmp_path: Path, sim, sink) -> None:
    assert describe(timedelta(seconds=90)) == "every 90s"
    assert describe(timedelta(minutes=15)) == "every 15m"
    assert describe(timedelta(days=1)) == "every 1d"
    assert describe("0 6 * * 1-5") == "cron 0 6 * * 1-5 (UTC)"
    lists = [{"id": 1}, {"id": 2, "cron": "0 6 * * *"}]
    settings = settings_for(tmp_path, sim, sink, lists, "[schedule]")  # neither key: 15m
    assert list_schedule(settings.lists[0], settings) == timedelta(minutes=15)
    last = datetime(2026, 1, 1, 10, tzinfo=UTC)
    first, second = (list_schedule(cfg, settings) for cfg in settings.lists)
    assert next_run(first, last) == datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    assert next_run(first, None) is None
    # A cron list's next run is its next firing after the last run started, in UTC.
    assert next_run(second, last) == datetime(2026, 1, 2, 6, tzinfo=UTC)


def test_a_list_run_within_its_period_is_not_due(tmp_path: Path, sim, sink) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 10, field_id=FIELD, seed=8)
    settings = settings_for(tmp_path, sim, sink, [MAIN])
    now = [datetime(2026, 5, 1, 12, tzinfo=UTC)]
    gap = timedelta(minutes=12)
    with run_context(settings) as real:
        ctx = dataclasses.replace(real, clock=lambda: now[0])
        assert sync_list(ctx, settings.lists[0], min_gap=gap).status == "ok"
        now[0] += gap - timedelta(seconds=1)  # another daemon's run, a moment ago
        with pytest.raises(RanRecentlyError, match="list 1001: a run started 719s ago"):
            sync_list(ctx, settings.lists[0], min_gap=gap)
        assert sync_list(ctx, settings.lists[0]).status == "ok", "a one-shot sync always runs"
        now[0] += gap
        assert sync_list(ctx, settings.lists[0], min_gap=gap).status == "ok"


GAP = timedelta(minutes=12)


@contextlib.contextmanager
def _after_a_run(tmp_path: Path, sim, sink, url: str) -> Iterator[tuple[Any, Any, list[datetime]]]:
    """A run context on a clock the test moves, the list's first run made and ok."""
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 10, field_id=FIELD, seed=8)
    settings = load_settings(write_config(tmp_path / "fleet.toml", sim, sink, url, [MAIN]))
    now = [datetime.now(UTC).replace(microsecond=0)]
    with run_context(settings) as real:
        ctx = dataclasses.replace(real, clock=lambda: now[0])
        assert sync_list(ctx, settings.lists[0], min_gap=GAP).status == "ok"
        yield ctx, settings.lists[0], now


def test_a_run_recorded_in_the_future_does_not_hold_the_list_back(
    tmp_path: Path, sim, sink, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with _after_a_run(tmp_path, sim, sink, db_url) as (ctx, cfg, now):
        now[0] -= timedelta(hours=3)  # the clock went back
        with caplog.at_level(logging.WARNING, logger="listrak_source"):
            assert sync_list(ctx, cfg, min_gap=GAP).status == "ok"
        warned = [
            r for r in caplog.records
            if r.levelno == logging.WARNING and r.name == "listrak_source.subscribers.sync"
        ]  # fmt: skip
        assert [r.getMessage() for r in warned] == [
            "list 1001: its last run is recorded as starting 10800s in the future "
            "(the clock went back?); running it now"
        ]
        now[0] += GAP / 2  # the run just made counts again: the fleet rule holds
        with pytest.raises(RanRecentlyError, match="a run started 360s ago"):
            sync_list(ctx, cfg, min_gap=GAP)


@pytest.mark.parametrize("ended", [RunStatus.STOPPED, RunStatus.FAILED, None])
def test_only_a_run_that_finished_its_job_makes_the_list_not_due(
    tmp_path: Path, sim, sink, db_url: str, ended: RunStatus | None
) -> None:
    with _after_a_run(tmp_path, sim, sink, db_url) as (ctx, cfg, now):
        now[0] += GAP + timedelta(minutes=1)
        cut_short = ctx.db.runs.start_run(1001, RunKind.SYNC, now[0], full_scan=True)
        if ended is not None:  # None: killed, left running
            ctx.db.runs.finish_run(cut_short, ended, now[0], {})
        now[0] += timedelta(minutes=1)  # the daemon restarts
        assert sync_list(ctx, cfg, min_gap=GAP).status == "ok"


def test_the_period_of_a_schedule_is_its_shortest_gap() -> None:
    assert period(timedelta(minutes=15)) == timedelta(minutes=15)
    assert period("*/15 * * * *") == timedelta(minutes=15)
    assert period("0 6 * * 1-5") == timedelta(days=1)  # not the weekend's three
    assert period("*/20 9-17 * * *") == timedelta(minutes=20)


def test_a_daemon_run_sends_the_lists_activity_and_counts_it(tmp_path: Path, sim, sink) -> None:
    sim.add_list(1001, "Main")
    emails = sim.seed(1001, 5, seed=6)
    sim.send_message(1001, 501, emails, subject="Hi")
    sim.open(1001, 501, emails[0])
    settings = settings_for(tmp_path, sim, sink, [{"id": 1001, "activity": True}])
    engine = make_engine(settings.database.url)
    upgrade(engine)
    daemon = build_daemon(settings, engine)
    daemon.run_list(settings.lists[0])
    assert [m["event"] for m in sink.messages if m["type"] == "track"] == ["Email Opened"]
    sent = daemon.metrics.activity_events.labels(list_id="1001", event="Email Opened", state="sent")
    assert sent._value.get() == 1
    engine.dispose()
