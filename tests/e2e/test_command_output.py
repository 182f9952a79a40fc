"""What the commands print, read by scripts and people, through the real console script.

The commands run against the simulator and sink; the processes of a test run side by side,
since each costs about a second to start.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from listrak_source.privacy import contact_ref
from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import on_a_terminal, run_cli, write_config

SCRIPT = Path(sys.executable).with_name("listrak-source")
SYNCED, NEW = {"id": 1001}, {"id": 1002}


@pytest.fixture
def config(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink) -> Iterator[Path]:
    """List 1001 synced once; list 1002 never, so a dry run has identify calls to print."""
    sim.add_list(1001, "Synced")
    sim.seed(1001, 30, seed=5)
    sim.add_list(1002, "New")
    sim.seed(1002, 40, seed=6)
    path = write_config(
        tmp_path / "config.toml", sim, sink, f"sqlite:///{tmp_path / 'state.db'}", [SYNCED, NEW]
    )
    assert run_cli(path, "sync", "--list", "1001") == 0
    yield path


def start(config: Path, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """`listrak-source ARGS` with stdout and stderr piped."""
    return subprocess.Popen(
        [str(SCRIPT), "--config", str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def test_a_reader_that_goes_away_ends_every_command_quietly(config: Path, sim) -> None:
    """`| head`: the pipe closes before the command writes; it stops as git log does."""
    email = next(iter(sim.truth(1001)))
    commands = [
        ("status",),
        ("status", "--json"),
        ("check",),
        ("lookup", email),
        ("sync", "--dry-run", "--list", "1002"),
    ]
    running = [start(config, *command) for command in commands]
    for proc in running:
        assert proc.stdout is not None
        proc.stdout.close()  # no reader left: the first write fails with EPIPE
    problems = []
    for command, proc in zip(commands, running, strict=True):
        _, err = proc.communicate(timeout=120)
        noise = ("Traceback", "BrokenPipe", "Exception ignored", "ERROR", "run failed", "error:")
        if proc.returncode != 141 or any(word in err for word in noise):
            problems.append((command, proc.returncode, err))
    assert problems == []


def stderr_records(err: str) -> list[dict[str, object]]:
    """Every line of stderr as a JSON record; a plain line fails the test."""
    records = []
    for line in err.splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a plain line among JSON logs: {line!r}")
    return records


def test_a_dry_run_says_would_send_and_stderr_keeps_one_format(config: Path) -> None:
    dry = start(config, "--log-format", "json", "sync", "--dry-run")
    unknown = start(config, "sync", "--list", "4242")  # a config error, as JSON too
    quiet = start(config, "sync", "--quiet", "--list", "1001")
    out, err = dry.communicate(timeout=120)
    assert dry.returncode == 0, err
    assert len(out.splitlines()) == 40  # list 1002's identify calls, on stdout
    said = [r["msg"] for r in stderr_records(err)]
    assert any("list 1002: ok" in m and "would send 40" in m for m in said), said
    assert not any("delivered" in m for m in said), said
    _, err = unknown.communicate(timeout=120)
    assert unknown.returncode == 2
    [record] = [r for r in stderr_records(err) if r["level"] == "ERROR"]
    assert str(record["msg"]).startswith("listrak-source: error: list 4242 is not in")
    out, err = quiet.communicate(timeout=120)
    assert quiet.returncode == 0 and err == "", err
    assert out.startswith("list 1001: ok")


def test_a_first_sync_shows_a_bar_and_no_escape_codes_for_a_dumb_terminal(config: Path) -> None:
    shown = on_a_terminal(config, {"TERM": "xterm", "NO_COLOR": "1"}, "sync", "--list", "1002")
    assert "[" in shown and "sync list 1002: scanned 40" in shown, shown
    assert "\x1b" not in shown, repr(shown)
    shown = on_a_terminal(config, {"TERM": "dumb"}, "sync", "--dry-run")
    # A terminal writes each newline as \r\n; a bar redrawn in place would add a lone \r.
    assert "\x1b" not in shown and "\r" not in shown.replace("\r\n", "\n"), repr(shown)


def test_backfill_previews_and_first_syncs_point_at_baseline(
    config: Path, tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink
) -> None:
    sim.add_list(1003, "Big")
    sim.seed(1003, 1200, seed=7)
    database = f"sqlite:///{tmp_path / 'state.db'}"
    big = write_config(tmp_path / "big.toml", sim, sink, database, [{"id": 1003}])
    nowhere = tmp_path / "not-yet.db"
    fresh = write_config(tmp_path / "new.toml", sim, sink, f"sqlite:///{nowhere}", [NEW])
    dry = start(fresh, "sync", "--dry-run")
    before = len(sink.messages)
    preview = start(config, "backfill", "--list", "1001")
    check = start(config, "check")
    out, err = preview.communicate(timeout=120)
    assert preview.returncode == 1, err
    assert "list 1001: would re-send its 30 subscribed contact(s)" in out, out
    assert "listrak-source backfill --list 1001 --confirm" in out
    assert len(sink.messages) == before  # a preview sends nothing
    out, _ = check.communicate(timeout=120)
    assert "baseline --list 1002" in out and "baseline --list 1001" not in out, out
    out, err = dry.communicate(timeout=120)
    assert dry.returncode == 0 and len(out.splitlines()) == 40, err
    assert not nowhere.exists(), "a dry run changes nothing, and creates no database"
    first = start(big, "sync")
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    [notice] = [r["msg"] for r in stderr_records(err) if "baseline" in str(r["msg"])]
    assert "first sync" in str(notice) and "baseline --list 1003" in str(notice), notice


def test_lookup_and_explain_agree_on_form_json_and_exit_status(config: Path, sim) -> None:
    known, unknown = sorted(sim.truth(1001))[0], "nobody@example.org"
    ref = contact_ref(known)
    running = {
        "lookup": start(config, "lookup", known, unknown),
        "lookup json": start(config, "lookup", known, "--json"),
        "explain": start(config, "explain", known),
        "explain json": start(config, "explain", unknown, "--json"),
    }
    done = {name: proc.communicate(timeout=120) for name, proc in running.items()}
    codes = {name: proc.returncode for name, proc in running.items()}
    # 0 when every address is known, 1 when one is not, for both commands.
    assert codes == {"lookup": 1, "lookup json": 0, "explain": 0, "explain json": 1}, done
    for name in ("lookup", "explain"):
        assert done[name][0].startswith(f"contact {ref}"), done[name]
        assert "@" not in done[name][0], "a contact is named by its reference"
    found = json.loads(done["lookup json"][0])["contacts"]
    assert [c["contact"] for c in found] == [ref]
    assert found[0]["lists"][0]["list_id"] == 1001 and found[0]["lists"][0]["subscribed"]
    nothing = json.loads(done["explain json"][0])["contacts"]
    assert nothing == [
        {
            "contact": contact_ref(unknown),
            "known": False,
            "subscriptions": [],
            "events": [],
            "values": [],
        }
    ]


def test_ctrl_c_stops_a_sync_promptly_and_records_it_stopped_with_its_counts(
    config: Path, tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink
) -> None:
    sim.add_list(1004, "Slow")
    sim.seed(1004, 2000, seed=8)
    sim.faults.page_delay = 0.3  # 20 pages of 100: the scan takes seconds
    database = f"sqlite:///{tmp_path / 'state.db'}"
    slow = write_config(tmp_path / "slow.toml", sim, sink, database, [{"id": 1004}])
    before = len(sink.messages)
    proc = start(slow, "sync", env={"LISTRAK_SOURCE_LISTRAK__PAGE_SIZE": "100"})
    deadline = time.monotonic() + 60
    while len(sink.messages) == before and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)  # a guard against a hang, not a measurement
    assert proc.returncode == 1, err
    assert "list 1004: stopped" in out, out
    assert "run failed" not in err and "Traceback" not in err
    [run] = [r for r in run_rows(database, 1004)]
    assert run["status"] == "stopped" and 0 < run["scanned"] < 2000, run
    assert run["delivered"] == len(sink.messages) - before > 0


def run_rows(url: str, list_id: int) -> list[dict[str, object]]:
    from sqlalchemy import create_engine, select

    from listrak_source.state.schema import runs

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(runs).where(runs.c.list_id == list_id)).mappings()
            return [dict(row) for row in rows]
    finally:
        engine.dispose()
