"""Locks: two workers never work one list at once, and a dead holder never blocks the next run."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import json
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, select

from listrak_source.cli.wiring import run_context
from listrak_source.config import load_settings
from listrak_source.records import RunResult
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import make_engine
from listrak_source.state.schema import list_state, runs
from listrak_source.subscribers.sync import sync_list

from ..conftest import cut_the_lock
from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    lock_holders,
    member_rows,
    run_cli,
    run_statuses,
    status_json,
    worker,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}
SLOW = {"LISTRAK_SOURCE_LISTRAK__PAGE_SIZE": "100"}
BUSY = re.compile(r"list 1001 is being synced by (\S+:(\d+):[0-9a-f]{8}); skipped")


def setup(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 1000, field_id=FIELD, seed=9)
    sim.add_list(1002, "Other")
    sim.seed(1002, 30, seed=10)
    return write_config(tmp_path / "c.toml", sim, sink, db_url, [MAIN, OTHER])


def wait_for_holder(db_url: str, list_id: int = 1001) -> str:
    """The holder's name once a worker holds the list; the deadline only bounds a hang."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if holder := lock_holders(db_url).get(list_id):
            return holder
        time.sleep(0.05)
    raise AssertionError("no worker ever took the list")


def run_spans(db_url: str, list_id: int) -> list[tuple[datetime, datetime]]:
    """(started, finished) of each finished run of a list."""
    engine: Engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            stmt = select(runs.c.started_at, runs.c.finished_at).where(
                runs.c.list_id == list_id, runs.c.finished_at.is_not(None)
            )
            return [(started, finished) for started, finished in conn.execute(stmt)]
    finally:
        engine.dispose()


def test_two_syncs_started_together_one_scans(tmp_path, sim, sink, db_url) -> None:
    config = setup(tmp_path, sim, sink, db_url)
    sim.faults.page_delay = 2  # ten pages: long enough for the slower start to be refused
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [worker(config, "sync", "--list", "1001", env=SLOW, log=log) for log in logs]
    deadline = time.monotonic() + 60
    while all(proc.poll() is None for proc in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    sim.faults.page_delay = 0  # one has given up: let the other finish quickly
    codes = [proc.wait(timeout=120) for proc in procs]
    assert sorted(codes) == [0, 1], codes
    winner, loser = (procs[codes.index(0)], logs[codes.index(1)])
    found = BUSY.search(loser.read_text())
    assert found, loser.read_text()
    assert int(found.group(2)) == winner.pid, "the refusal names the process that holds it"
    assert run_statuses(db_url, 1001) == ["ok"], "exactly one of them scanned"
    assert len(sink.messages) == 1000
    assert_profiles_match(sim, sink, [MAIN])
    assert lock_holders(db_url) == {}


def test_status_names_the_holder_and_a_killed_one_frees_the_list_at_once(
    tmp_path, sim, sink, db_url, capsys
) -> None:
    config = setup(tmp_path, sim, sink, db_url)
    sim.faults.page_delay = 0.3
    first = worker(config, "sync", "--list", "1001", env=SLOW, log=tmp_path / "first.log")
    holder = wait_for_holder(db_url)
    assert holder.split(":")[1] == str(first.pid)
    assert status_json(config)[1001]["held_by"] == holder
    capsys.readouterr()
    assert run_cli(config, "status") == 1  # list 1002 has never run: degraded
    shown = capsys.readouterr().out
    assert f"list 1001: being synced by {holder}" in shown
    assert "\n  list 1001: " not in shown  # a run in progress is no reason for concern
    first.kill()
    first.wait()
    assert status_json(config)[1001]["held_by"] is None
    capsys.readouterr()
    assert run_cli(config, "status") == 1  # degraded until the next run closes it
    assert "the worker of its last run died" in capsys.readouterr().out
    # No waiting for anything to expire: the very next sync takes the list.
    sim.faults.page_delay = 0
    assert run_cli(config, "sync") == 0
    assert run_statuses(db_url, 1001) == ["failed", "ok"], "the dead run is closed, not left"
    assert_profiles_match(sim, sink, [MAIN, OTHER])
    assert_no_change_under_two_ids(sink.messages)


def test_a_dry_run_of_a_slow_list_holds_up_no_real_sync(tmp_path, sim, sink, db_url) -> None:
    config = setup(tmp_path, sim, sink, db_url)
    # Ten pages of list 1001 for the dry run, one for each real sync: the dry run has
    # eight seconds of pages left when they start, room for them on a busy machine.
    sim.faults.page_delay = 1.0
    pages = sim.stats.pages
    dry = worker(config, "sync", "--dry-run", "--list", "1001", env=SLOW, log=tmp_path / "d.log")
    try:
        while sim.stats.pages < pages + 2:  # the dry run has stored pages and goes on
            assert dry.poll() is None, (tmp_path / "d.log").read_text()
            time.sleep(0.05)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            other = run_cli(config, "sync", "--list", "1002")
            same = run_cli(config, "sync", "--list", "1001")
        assert dry.poll() is None, "the real syncs must not have waited for the dry run"
    finally:
        sim.faults.page_delay = 0
        assert dry.wait(timeout=120) == 0, (tmp_path / "d.log").read_text()
    assert other == 0
    assert len([m for m in sink.messages if "Listrak_list_1002" in m["traits"]]) == 30
    if db_url.startswith("sqlite"):
        # The dry run read a copy: a real sync of the very same list goes ahead.
        assert same == 0
    else:
        # Refused at once, never blocked behind the dry run's transaction.
        assert same == 1 and BUSY.search(out.getvalue())
    assert lock_holders(db_url) == {}
    dry_lines = [
        json.loads(line)
        for line in (tmp_path / "d.log").read_text().splitlines()
        if line.startswith("{")  # progress lines are plain text
    ]
    assert not [line for line in dry_lines if line["level"] in ("WARNING", "ERROR")]


def test_a_listrak_outage_fails_the_run_and_leaves_nothing_behind(
    tmp_path, sim, sink, db_url, monkeypatch
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_ATTEMPTS", "1")
    config = setup(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync", "--list", "1001") == 0
    gone = sorted(sim.truth(1001))[:5]
    for email in gone:
        sim.remove(1001, email)  # only a complete scan may remove these
    sim.faults.die_after_page = 3  # pages 3 onwards answer 500
    start = len(sink.messages)
    assert run_cli(config, "sync", "--list", "1001") == 1
    assert run_statuses(db_url, 1001) == ["ok", "failed"]
    assert all(m["traits"]["Listrak_list_1001"] is True for m in sink.messages[start:])
    assert all(member_rows(db_url, 1001)[key]["desired_subscribed"] for key in gone)
    assert lock_holders(db_url) == {}
    sim.faults.die_after_page = None
    assert run_cli(config, "sync", "--list", "1001") == 0
    removed = [m for m in sink.messages[start:] if m["traits"]["Listrak_list_1001"] is None]
    assert sorted(m["anonymousId"].lower() for m in removed) == gone
    assert_profiles_match(sim, sink, [MAIN])


def test_workers_started_together_never_run_one_list_twice(tmp_path, sim, sink, db_url) -> None:
    config = setup(tmp_path, sim, sink, db_url)
    sim.faults.page_delay = 0.05
    procs: list[subprocess.Popen[bytes]] = [
        worker(config, "sync", env=SLOW, log=tmp_path / f"w{n}.log") for n in range(4)
    ]
    assert {proc.wait(timeout=120) for proc in procs} <= {0, 1}
    for list_id in (1001, 1002):
        spans = sorted(run_spans(db_url, list_id))
        assert spans, f"list {list_id} never ran"
        for (_, finished), (started, _) in itertools.pairwise(spans):
            assert finished <= started, f"list {list_id}: two runs overlapped"
    assert len(sink.messages) == 1030, "each change was sent by exactly one worker"
    assert_no_change_under_two_ids(sink.messages)
    assert lock_holders(db_url) == {}


def test_a_run_whose_lock_dies_stops_before_writing_more(
    tmp_path, sim, sink, db_url, monkeypatch
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    config = setup(tmp_path, sim, sink, db_url)
    settings = load_settings(config)
    with run_context(settings) as ctx:
        cut = dataclasses.replace(
            ctx, on_progress=lambda stage, n: cut_the_lock(db_url, ctx.holder, 1001)
        )
        result = sync_list(cut, settings.lists[0])
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("list 1001: lost its lock")
    assert run_statuses(db_url, 1001) == ["failed"]
    assert len(member_rows(db_url, 1001)) == 100, "not one page stored after the loss"
    assert lock_holders(db_url) == {}
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN, OTHER])
    assert_no_change_under_two_ids(sink.messages)


def test_a_re_sync_whose_lock_dies_writes_nothing_after_its_pages(
    tmp_path, sim, sink, db_url, monkeypatch
) -> None:
    """A page that writes nothing checks no lock; the end of the scan does, before the
    sweep and the list's state are written."""
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    config = setup(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    rows, state = member_rows(db_url, 1001), list_states(db_url)
    result, progress = sync_losing_the_lock(config, db_url)
    assert progress > 2, "the scan went on past the page that lost the lock"
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("list 1001: lost its lock")
    assert member_rows(db_url, 1001) == rows and list_states(db_url) == state
    assert run_statuses(db_url, 1001) == ["ok", "failed"]


def test_a_failed_re_sync_whose_lock_died_delivers_nothing(
    tmp_path, sim, sink, db_url, monkeypatch
) -> None:
    """Listrak fails part way through a re-sync whose pages wrote nothing, and whose lock
    died on its first page: the run stops there, before it posts what was left due."""
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__MAX_ATTEMPTS", "2")  # Listrak fails at once
    config = setup(tmp_path, sim, sink, db_url)
    sink.faults.refuse_all = 400  # an outage at once: every message left due
    assert run_cli(config, "sync") == 1
    sink.faults.refuse_all = None
    sent = len(sink.messages)
    sim.faults.die_after_page = 4
    result, _ = sync_losing_the_lock(config, db_url)
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("list 1001: lost its lock")
    assert len(sink.messages) == sent


def test_a_re_sync_whose_lock_dies_after_a_page_of_changes_posts_them_not(
    tmp_path, sim, sink, db_url, monkeypatch
) -> None:
    """The first page hands its changes to the courier, which gathers pages for a moment;
    the pages after it write nothing, but the run is stopped at the next, before the courier
    posts or records anything."""
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    config = setup(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    truth, listed = sim.truth(1001, FIELD), sim.get(1001).contacts
    first_page = sorted(truth, key=lambda key: listed[key].order)[:5]  # in Listrak's order
    for n, key in enumerate(first_page):
        sim.set_field(1001, str(truth[key]["email"]), FIELD, f"changed-{n}")
    rows, sent = member_rows(db_url, 1001), len(sink.messages)
    # Nine pages of nothing outlast the courier's second of gathering; the next page does not.
    sim.faults.page_delay = 0.25
    result, _ = sync_losing_the_lock(config, db_url)
    assert result.status == "failed" and result.error is not None
    assert result.error.startswith("list 1001: lost its lock")
    assert len(sink.messages) == sent
    after = member_rows(db_url, 1001)
    written = [key for key in rows if after[key] != rows[key]]
    assert sorted(written) == sorted(first_page)
    assert all(after[key]["message_id"] for key in written), "still due, never marked sent"


def sync_losing_the_lock(config: Path, db_url: str) -> tuple[RunResult, int]:
    """A sync of list 1001 whose lock is cut once its first page is stored; its outcome,
    and how many progress reports it made in all."""
    settings = load_settings(config)
    reports = itertools.count()
    with run_context(settings) as ctx:

        def once(_stage: str, _count: int) -> None:
            if next(reports) == 0:
                cut_the_lock(db_url, ctx.holder, 1001)

        result = sync_list(dataclasses.replace(ctx, on_progress=once), settings.lists[0])
    return result, next(reports)


def list_states(db_url: str) -> list[tuple[object, ...]]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(select(list_state))]
    finally:
        engine.dispose()
