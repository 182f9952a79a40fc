"""The README's "Try it against the simulator", run as written (on free ports): the
standalone simulator, the exact config, its commands, the /_control/ routes over HTTP, the
daemon's status page and the receiver's `curl` line."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
PORTS = ("18080", "18081", "19464", "18088")


def _free_ports(n: int) -> list[str]:
    import socket

    probes = [socket.socket() for _ in range(n)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [str(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@pytest.fixture(scope="module")
def blocks() -> list[str]:
    """The section's fenced blocks, its fixed ports swapped for free ones."""
    text = README.read_text()
    section = text.split("## Try it against the simulator", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"```(?:sh|toml)\n(.*?)```", section, flags=re.DOTALL)
    for fixed, free in zip(PORTS, _free_ports(len(PORTS)), strict=True):
        found = [block.replace(fixed, free) for block in found]
    return found


@pytest.fixture
def simulator(blocks: list[str]) -> Iterator[str]:
    """The simulator started by the README's command; yields its control origin."""
    argv = shlex.split(blocks[0])
    assert argv[:3] == [".venv/bin/python", "-m", "listrak_source.simulator"]
    proc = subprocess.Popen(
        [sys.executable, *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        announce = json.loads(proc.stdout.readline())
        yield str(announce["control"])
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


def _cli(folder: Path, command: str) -> subprocess.CompletedProcess[str]:
    argv = shlex.split(command)
    assert argv[0] == "listrak-source", command
    return subprocess.run(
        [sys.executable, "-m", "listrak_source", *argv[1:]],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _curl(command: str) -> httpx.Response:
    """A README `curl` line, sent as curl would send it."""
    argv = shlex.split(command)
    url = next(a for a in argv if a.startswith("http"))
    headers = dict(argv[i + 1].split(": ", 1) for i, a in enumerate(argv) if a == "-H")
    body = argv[argv.index("-d") + 1] if "-d" in argv else None
    if "-X" not in argv:
        return httpx.get(url, timeout=30)
    return httpx.request(argv[argv.index("-X") + 1], url, content=body, headers=headers, timeout=30)


def _steps(block: str) -> list[str]:
    """Each command of a block, comments dropped, `a && b` and `a; b` taken apart."""
    steps = []
    for line in block.splitlines():
        command = line.split("  #", 1)[0].strip()
        steps += [part.strip() for part in re.split(r"&&|;", command) if part.strip()]
    return steps


def test_the_readme_walk_through_runs_as_written(
    tmp_path: Path, blocks: list[str], simulator: str
) -> None:
    _, config, commands, event = blocks
    (tmp_path / "config.toml").write_text(config)
    done: list[tuple[str, subprocess.CompletedProcess[str]]] = []
    for step in _steps(commands):
        if step == "listrak-source run":
            continue  # the daemon: below
        if step.startswith("curl"):
            response = _curl(step)
            assert response.status_code == 200, response.text
            continue
        done.append((step, _cli(tmp_path, step)))
    codes = [(step, result.returncode) for step, result in done]
    assert codes == [
        ("listrak-source migrate", 0),
        ("listrak-source check", 0),
        ("listrak-source sync", 0),
        ("listrak-source sync", 0),
        ("listrak-source sync", 1),  # Segment's outage: partial
        ("listrak-source status", 1),  # degraded
    ], [result.stdout + result.stderr for _, result in done]
    first, churned, outage = (result.stdout for step, result in done if step.endswith("sync"))
    assert "+2000 subscribed" in first and "delivered 2000" in first
    assert "+10 subscribed, -20 unsubscribed" in churned and "delivered 30" in churned
    assert "partial" in outage and "3 pending, outage" in done[-1][1].stdout
    lists = httpx.get(f"{simulator}lists", timeout=30).json()
    assert lists["lists"]["1001"] == 2000 - 20 + 10 - 2 + 1
    _daemon_takes_the_event(tmp_path, config, event)


def _daemon_takes_the_event(folder: Path, config: str, event: str) -> None:
    metrics = re.search(r"\[metrics\]\nport = (\d+)", config)
    assert metrics is not None
    page = f"http://127.0.0.1:{metrics.group(1)}/"
    proc = subprocess.Popen(
        [sys.executable, "-m", "listrak_source", "run"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ,
    )
    try:
        deadline = time.monotonic() + 60  # bounds a hang only
        while not _serves(page + "healthz") and time.monotonic() < deadline:
            time.sleep(0.1)
        answer = _curl(event.strip())
        assert answer.status_code == 200 and answer.json() == {"accepted": 1, "ignored": {}}
        shown = httpx.get(page, timeout=30).text
        assert "vip_shoppers" in shown and "user000001@example.com" not in shown
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    status = _cli(folder, "listrak-source status --json")
    assert json.loads(status.stdout)["audiences"]["totals"]["recorded"] == 1


def _serves(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_control_routes_answer_over_http_outside_the_api(simulator: str) -> None:
    before = httpx.get(f"{simulator}lists", timeout=30).json()["lists"]["1001"]
    body = {"list_id": 1001, "email": "new.person@example.com", "fields": {"678": "crm-9"}}
    assert httpx.post(f"{simulator}subscribe", json=body, timeout=30).json() == {"subscribed": 1}
    assert httpx.get(f"{simulator}lists", timeout=30).json()["lists"]["1001"] == before + 1
    gone = {"list_id": 1001, "email": "new.person@example.com"}
    assert httpx.post(f"{simulator}remove", json=gone, timeout=30).status_code == 200
    assert httpx.get(f"{simulator}lists", timeout=30).json()["lists"]["1001"] == before
    # Listrak's API itself goes down on request, and comes back on reset.
    api = simulator.replace("/_control/", "/email/v1/List")
    outage = {"service": "listrak", "requests": 1, "status": 503}
    assert httpx.post(f"{simulator}outage", json=outage, timeout=30).status_code == 200
    assert httpx.get(api, timeout=30).status_code == 503
    assert httpx.get(api, timeout=30).status_code == 401  # healthy again: it wants a token
    # Mistakes are answered, in JSON, and never reach Listrak's namespace.
    assert httpx.get(f"{simulator}churn", timeout=30).status_code == 405
    assert httpx.post(f"{simulator}nothing", json={}, timeout=30).status_code == 404
    assert httpx.post(f"{simulator}churn", content=b"[", timeout=30).status_code == 400
    bad = httpx.post(f"{simulator}outage", json={"service": "mail"}, timeout=30)
    assert bad.status_code == 400 and "service" in bad.json()["error"]
