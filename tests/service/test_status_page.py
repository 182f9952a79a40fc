"""The daemon's metrics port, as a browser, Prometheus and `status` see it: a read-only status
page at / that agrees with the state, /metrics exporting every series the shipped alert
rules and dashboard use, and /healthz, by which `status` knows a daemon runs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from listrak_source.simulator import ListrakSimulator, SegmentSink
from tests.audiences.world import LIST, VIP, event, prepare_list
from tests.cli.test_status_health import add_run, cli
from tests.e2e.harness import run_cli, write_config
from tests.e2e.test_audience_commands import send

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
GONE = 4242  # a list the state keeps and the config no longer names
T = TypeVar("T")


def wait_for(check: Callable[[], T], what: str) -> T:
    """The condition's value once it holds; the deadline only bounds a hang."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Page(HTMLParser):
    """What a browser would show: the text, and each element with its attributes."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def titles(self, prefix: str) -> list[str]:
        """The outcome words of a strip's boxes, left to right."""
        return [
            str(a["title"]).removeprefix(prefix)
            for tag, a in self.elements
            if tag == "span" and str(a.get("title", "")).startswith(prefix)
        ]


@pytest.fixture
def daemon(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink
) -> Iterator[tuple[Path, str, int, list[str]]]:
    """A daemon over a list with dead rows, an audience event received, and a list no longer
    configured; its first scheduled run finished."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    emails = prepare_list(sim, subscribers=5)
    port = free_port()
    extra = f"""
[schedule]
interval = "1h"
[metrics]
port = {port}
[delivery]
max_attempts = 1
[push]
interval = "1h"
[[audiences]]
key = "vip"
list_id = {LIST}
field_id = {VIP}
"""
    config = write_config(tmp_path / "config.toml", sim, sink, url, [{"id": LIST}], extra=extra)
    sink.faults.poison = set(emails[:2])  # Segment refuses these alone: dead after one attempt
    assert run_cli(config, "sync") == 1
    send(config, event(emails[0], True))
    add_run(url, GONE, "ok", timedelta(days=2))
    with (tmp_path / "daemon.log").open("ab") as log:
        command = [sys.executable, "-m", "listrak_source", "--config", str(config), "run"]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=os.environ)
    try:
        # The list ran a moment ago, so the daemon leaves it for its schedule; it serves.
        wait_for(lambda: _answers(port), "the daemon to serve its metrics port")
        yield config, url, port, emails
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_status_page_shows_the_state_and_changes_nothing(
    daemon: tuple[Path, str, int, list[str]],
) -> None:
    config, _, port, emails = daemon
    answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in answer.headers["content-security-policy"]
    state = json.loads(cli(config, "status", "--json").stdout)
    page = Page(answer.text)
    text = " ".join("".join(page.text).split())
    (item,) = state["lists"]
    # The verdict and its reasons, as `status` judges them.
    assert state["health"]["verdict"] == "degraded"
    assert "degraded (as of" in text
    for reason in state["health"]["reasons"]:
        assert reason in text
    # The list's runs as a strip, oldest first.
    shown = page.titles("run: ")
    assert shown == list(reversed(item["recent"])) == ["partial"]
    # Dead rows by reference, with Segment's answer; never an address.
    assert f"dead rows: {item['dead']}" in text and item["dead"] == 2
    for dead in item["dead_rows"]:
        assert dead["contact"] in text
    assert not any(email.lower() in answer.text.lower() for email in emails)
    assert "@" not in answer.text
    # What waits, the receiver's counts, the audience, the list no longer configured.
    assert "nothing waits for Segment" in text
    assert state["audiences"]["totals"]["recorded"] == 1
    cells = [t.strip() for t in page.text]
    assert cells[cells.index("recorded") + 1] == "1"
    assert "vip" in cells
    assert "lists no longer in the config" in text and str(GONE) in cells
    # Times in UTC with their offset, to the second, as `status` prints them.
    started = datetime.fromisoformat(item["last_run"]["started_at"]).isoformat(timespec="seconds")
    assert started.endswith("+00:00") and started in cells
    # Read only: nothing to submit, nothing to run, and every write is refused.
    assert not [tag for tag, _ in page.elements if tag in {"form", "script", "a", "input"}]
    for method in ("POST", "PUT", "DELETE"):
        refused = httpx.request(method, f"http://127.0.0.1:{port}/", timeout=10)
        assert refused.status_code == 405
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).text == "ok\n"


def test_status_knows_the_daemon_runs_and_every_metric_deploy_uses_is_exported(
    daemon: tuple[Path, str, int, list[str]],
) -> None:
    config, _, port, _ = daemon
    exported = _exported(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
    used = _used_names()
    assert len(used) >= 12
    assert used <= exported, sorted(used - exported)
    state = json.loads(cli(config, "status", "--json").stdout)
    assert state["daemon"] == {"known": True}
    (item,) = state["lists"]
    assert item["next_run_if_daemon_runs"] is False
    due = datetime.fromisoformat(item["next_run"])
    started = datetime.fromisoformat(item["last_run"]["started_at"]).replace(microsecond=0)
    assert due - started == timedelta(hours=1) and due.tzinfo == UTC
    text = cli(config, "status").stdout
    assert "if a daemon runs" not in text and "*" not in text.splitlines()[1]


def _used_names() -> set[str]:
    """Every metric the shipped alert rules and dashboard query."""
    rules = (DEPLOY / "listrak-source-alerts.yml").read_text()
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs.append(dashboard["templating"]["list"][1]["definition"])
    return set(re.findall(r"\blistrak_source_[a-z_]+", rules + "\n".join(exprs)))


def _exported(text: str) -> set[str]:
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_count", "_sum", "_created"),
        }.get(family.type, ("",))
        names |= {family.name + suffix for suffix in suffixes}
    return names
