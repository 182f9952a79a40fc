"""What the commands print, read by scripts and people, through the real console script.

The commands run against the simulator and sink; the processes of a test run side by side,
since each costs about a second to start.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import run_cli, write_config

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


def on_a_terminal(config: Path, env: Mapping[str, str], *args: str) -> str:
    """What a command writes to stderr when stderr is a terminal (a pseudo-terminal here)."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [str(SCRIPT), "--config", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env={**os.environ, **env},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the last writer closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=120) == 0
    return b"".join(chunks).decode()


def test_a_first_sync_shows_a_bar_and_no_escape_codes_for_a_dumb_terminal(config: Path) -> None:
    shown = on_a_terminal(config, {"TERM": "xterm", "NO_COLOR": "1"}, "sync", "--list", "1002")
    assert "[" in shown and "sync list 1002: scanned 40" in shown, shown
    assert "\x1b" not in shown, repr(shown)
    shown = on_a_terminal(config, {"TERM": "dumb"}, "sync", "--dry-run")
    # A terminal writes each newline as \r\n; a bar redrawn in place would add a lone \r.
    assert "\x1b" not in shown and "\r" not in shown.replace("\r\n", "\n"), repr(shown)
