"""`status` answers "is it healthy?": run history, last ok, times with their zone, next run
only as a daemon would run it, overdue marks, lists no longer configured, and a verdict
with an exit status a monitor can use. Through the real entry point, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, insert

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state.schema import audience_pushes, runs
from tests.e2e.harness import run_cli, write_config


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`listrak-source --config CONFIG ARGS`, as a shell would run it."""
    command = [sys.executable, "-m", "listrak_source", "--config", str(config), *args]
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        command, check=False, capture_output=True, text=True, env=env, timeout=120
    )


def add_run(db_url: str, list_id: int, status: str, ago: timedelta, **extra: Any) -> None:
    """A run recorded as a worker would have, `ago` before now."""
    started = datetime.now(UTC) - ago
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            values = {
                "list_id": list_id,
                "kind": "sync",
                "full_scan": True,
                "started_at": started,
                "finished_at": started + timedelta(seconds=3),
                "status": status,
            }
            conn.execute(insert(runs).values(**(values | extra)))
    finally:
        engine.dispose()


@pytest.fixture
def config(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str) -> Path:
    sim.add_list(1001, "Main")
    sim.seed(1001, 5, seed=3)
    path = write_config(tmp_path / "config.toml", sim, sink, sqlite_url, [{"id": 1001}])
    assert run_cli(path, "sync") == 0
    return path


def test_a_healthy_list_shows_zones_last_ok_and_a_next_run_only_if_a_daemon_runs(
    config: Path,
) -> None:
    done = cli(config, "status")
    assert done.returncode == 0, done.stderr
    head, row = done.stdout.splitlines()[:2]
    assert "LAST OK" in head
    # ISO 8601 with the offset, never a bare wall clock.
    assert row.count("+00:00") == 3
    # No daemon answered: the next run is what a daemon would do, and says so.
    assert "+00:00*" in row
    assert "* if a daemon runs" in done.stdout
    assert done.stdout.rstrip().endswith("health: healthy")


def test_run_history_in_text_and_json(config: Path) -> None:
    run_cli(config, "sync")
    text = cli(config, "status", "--runs", "5")
    assert text.returncode == 0, text.stderr
    assert "list 1001: last 2 run(s)" in text.stdout
    document = json.loads(cli(config, "status", "--json", "--runs", "1").stdout)
    (item,) = document["lists"]
    assert [run["status"] for run in item["runs"]] == ["ok"]
    assert item["runs"][0]["started_at"].endswith("+00:00")
    assert item["last_ok"].endswith("+00:00")
    assert document["health"] == {"verdict": "healthy", "exit_status": 0, "reasons": []}
    assert cli(config, "status", "--runs", "many").returncode == 2


def test_an_overdue_list_is_marked_and_the_verdict_is_failing(
    config: Path, sqlite_url: str
) -> None:
    # The schedule is every 15 minutes; the last run started two hours ago and none runs now.
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(runs.delete())
    engine.dispose()
    add_run(sqlite_url, 1001, "ok", timedelta(hours=2))
    done = cli(config, "status")
    assert done.returncode == 2, done.stdout
    assert "OVERDUE" in done.stdout
    assert "list 1001: overdue: its next run was due at" in done.stdout
    assert done.stdout.rstrip().endswith("health: failing")
    document = json.loads(cli(config, "status", "--json").stdout)
    assert document["lists"][0]["overdue"] is True
    assert document["health"]["verdict"] == "failing"


def test_one_failed_run_degrades_three_in_a_row_fail(config: Path, sqlite_url: str) -> None:
    add_run(sqlite_url, 1001, "failed", timedelta(seconds=30), error="Listrak answered 503")
    done = cli(config, "status")
    assert done.returncode == 1, done.stdout
    assert "list 1001: its last run ended failed" in done.stdout
    assert done.stdout.rstrip().endswith("health: degraded")
    add_run(sqlite_url, 1001, "failed", timedelta(seconds=20))
    add_run(sqlite_url, 1001, "failed", timedelta(seconds=10))
    done = cli(config, "status")
    assert done.returncode == 2, done.stdout
    assert "list 1001: its last 3 runs failed" in done.stdout


def test_a_list_removed_from_the_config_is_shown_as_such(config: Path, sqlite_url: str) -> None:
    add_run(sqlite_url, 1002, "ok", timedelta(days=3))
    done = cli(config, "status")
    assert done.returncode == 0, done.stdout
    assert "list 1002: no longer in the config (last run " in done.stdout
    document = json.loads(cli(config, "status", "--json").stdout)
    assert [gone["list_id"] for gone in document["unconfigured_lists"]] == [1002]


def test_a_list_never_run_is_degraded(tmp_path: Path, config: Path, sqlite_url: str) -> None:
    text = config.read_text() + "\n[[lists]]\nid = 1003\n"
    other = tmp_path / "two.toml"
    other.write_text(text)
    done = cli(other, "status")
    assert done.returncode == 1, done.stdout
    assert "list 1003: never run" in done.stdout


@pytest.fixture
def audience_config(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str
) -> Path:
    sim.add_list(1001, "Main")
    sim.add_field(1001, 901, "CheckBox", "VIP")
    sim.seed(1001, 5, seed=3)
    extra = "[[audiences]]\nkey = 'vip'\nlist_id = 1001\nfield_id = 901\n"
    path = write_config(tmp_path / "c.toml", sim, sink, sqlite_url, [{"id": 1001}], extra=extra)
    assert run_cli(path, "sync") == 0
    return path


def add_push(db_url: str, status: str, ago: timedelta) -> None:
    """A push of list 1001's audience values, recorded as the worker records one."""
    started = datetime.now(UTC) - ago
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(audience_pushes).values(
                    list_id=1001, started_at=started, finished_at=started, status=status
                )
            )
    finally:
        engine.dispose()


def test_audience_pushes_count_in_the_verdict(audience_config: Path, sqlite_url: str) -> None:
    add_push(sqlite_url, "ok", timedelta(minutes=3))
    assert cli(audience_config, "status").returncode == 0
    add_push(sqlite_url, "failed", timedelta(minutes=2))
    done = cli(audience_config, "status")
    assert done.returncode == 1, done.stdout
    assert "list 1001: last push ended failed" in done.stdout
    add_push(sqlite_url, "held", timedelta(minutes=1))
    done = cli(audience_config, "status")
    assert done.returncode == 2, done.stdout
    assert "list 1001: last push held: `push --allow-mass-flip` if it is right" in done.stdout
    document = json.loads(cli(audience_config, "status", "--json").stdout)
    assert document["audiences"]["pushes"][0]["recent"] == ["held", "failed", "ok"]
