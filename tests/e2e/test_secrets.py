"""Every command, with known secrets: none of them may appear in any output."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import FIELD, write_config

CLIENT_SECRET = "S3cret-listrak-9f2c41"
WRITE_KEY = "WKsegment7d1e55aa"
MAIN = {"id": 1001, "user_id_field": FIELD}


@pytest.fixture
def secret_sim() -> Iterator[ListrakSimulator]:
    with ListrakSimulator(client_secret=CLIENT_SECRET) as sim:
        sim.add_list(1001, "Main", field_ids=[FIELD])
        sim.seed(1001, 200, field_id=FIELD, seed=4)
        yield sim


@pytest.fixture
def secret_sink() -> Iterator[SegmentSink]:
    with SegmentSink(write_key=WRITE_KEY) as sink:
        yield sink


def run(config: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "listrak_source", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
        check=False,
    )
    return proc.stdout + proc.stderr


def daemon_output(config: Path, sink: SegmentSink) -> str:
    proc = subprocess.Popen(
        [sys.executable, "-m", "listrak_source", "--config", str(config), "--debug", "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not sink.messages and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    return out


def failures(config: Path, sim: ListrakSimulator, sink: SegmentSink) -> list[str]:
    """Errors and tracebacks: Segment down, Listrak refusing, an unknown list."""
    out = [run(config, "--debug", "sync")]
    sink.faults.fail_next(10_000, status=500)
    out.append(run(config, "--debug", "backfill", "--confirm"))
    sink.faults.reset()
    sim.faults.reject_auth = True
    out += [run(config, "--debug", "sync"), run(config, "--debug", "check")]
    sim.faults.reject_auth = False
    out.append(run(config, "--debug", "sync", "--list", "999"))
    return out


def commands(*groups: list[str]) -> list[list[str]]:
    return list(groups)


GROUPS = {
    "setup": commands(["migrate"], ["check"], ["sync", "--dry-run"]),
    "sync": commands(["sync"], ["status"], ["status", "--json"]),
    "resend": commands(["sync"], ["backfill", "--confirm"], ["baseline"], ["retry"]),
}


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_commands_print_no_secret(
    tmp_path: Path, secret_sim, secret_sink, sqlite_url, group: str, debug: bool
) -> None:
    config = write_config(tmp_path / "c.toml", secret_sim, secret_sink, sqlite_url, [MAIN])
    flags = ["--debug"] if debug else []
    text = "\n".join(run(config, *flags, "--log-format", "json", *c) for c in GROUPS[group])
    assert_clean(text, secret_sim, sent=debug and group != "setup")


def test_failures_and_daemon_print_no_secret(
    tmp_path: Path, secret_sim, secret_sink, sqlite_url
) -> None:
    config = write_config(tmp_path / "c.toml", secret_sim, secret_sink, sqlite_url, [MAIN])
    text = "\n".join(
        [*failures(config, secret_sim, secret_sink), daemon_output(config, secret_sink)]
    )
    assert "Traceback" in text
    assert_clean(text, secret_sim, sent=True)


def assert_clean(text: str, sim: ListrakSimulator, *, sent: bool) -> None:
    """No secret, token or Basic credential anywhere; and the commands really ran."""
    assert "listrak-source: error: unexpected" not in text
    if sent:
        # The Segment library logs its request bodies, write key included, at debug level;
        # the poster drops those lines whatever the level (tests/segment/test_poster.py).
        assert "making request" not in text
    tokens = list(sim._tokens._tokens)  # the access tokens the simulator issued
    basic = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for secret in [CLIENT_SECRET, WRITE_KEY, basic, *tokens]:
        assert secret not in text, f"a secret leaked: {secret[:4]}..."
