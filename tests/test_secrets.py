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

from .e2e import FIELD, write_config

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


def test_no_command_prints_a_secret(tmp_path: Path, secret_sim, secret_sink, sqlite_url) -> None:
    config = write_config(tmp_path / "c.toml", secret_sim, secret_sink, sqlite_url, [MAIN])
    outputs = []
    for debug in ((), ("--debug",)):
        for command in (
            ["migrate"],
            ["check"],
            ["sync", "--dry-run"],
            ["sync"],
            ["status"],
            ["status", "--json"],
            ["backfill"],
            ["baseline"],
            ["retry"],
        ):
            outputs.append(run(config, *debug, "--log-format", "json", *command))
    # Failures print errors and tracebacks: Segment down, then Listrak refusing.
    secret_sink.faults.fail_next(10_000, status=500)
    outputs.append(run(config, "--debug", "backfill"))
    secret_sink.faults.reset()
    secret_sim.faults.reject_auth = True
    outputs.append(run(config, "--debug", "sync"))
    outputs.append(run(config, "--debug", "check"))
    secret_sim.faults.reject_auth = False
    outputs.append(run(config, "--debug", "sync", "--list", "999"))
    outputs.append(daemon_output(config, secret_sink))
    text = "\n".join(outputs)
    # The commands really ran, with tracebacks and the Segment library's request bodies
    # (which carry the write key) logged at debug level.
    assert "delivered" in text and "Traceback" in text and "making request" in text
    tokens = list(secret_sim._tokens._tokens)  # the access tokens the simulator issued
    basic = base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    for secret in [CLIENT_SECRET, WRITE_KEY, basic, *tokens]:
        assert secret not in text, f"a secret leaked: {secret[:4]}..."
    assert len(tokens) >= 5
