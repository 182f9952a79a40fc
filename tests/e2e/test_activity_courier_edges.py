"""An activity pass posts each page's events while it reads on: Segment failing part way
through the read, in each of its ways, still ends with each fact sent once, one content
per messageId, and the contact's spelling as the list's identifies carry it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .activity_world import LIST, MSG, activity_config, broadcast, tracks
from .harness import run_cli


def _one_content_per_id(sink: SegmentSink) -> None:
    contents: dict[str, str] = {}
    for m in tracks(sink):
        fields = ("event", "anonymousId", "timestamp", "properties", "context")
        content = json.dumps({k: m.get(k) for k in fields}, sort_keys=True)
        assert contents.setdefault(m["messageId"], content) == content


def _fail_at_fourth_page(sink: SegmentSink, fault: str) -> Any:
    reads: list[str] = []

    def hook(path: str) -> None:
        if path.endswith("/Activity"):
            reads.append(path)
            if len(reads) != 4:
                return
            if fault == "lose":
                sink.faults.lose_ack_next(1)
            elif fault == "outage":
                sink.faults.fail_next(20, 503)
            elif fault == "refuse":
                sink.faults.fail_next(1, 400)

    return hook


@pytest.mark.parametrize("fault", ["lose", "outage", "refuse", "poison"])
def test_segment_failing_during_the_read_loses_and_repeats_nothing(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_SEGMENT__MAX_RETRIES", "0")  # an outage ends at once
    emails = broadcast(sim, count=24)
    truth = sim.truth(LIST)
    mixed = [k for k in emails if truth[k]["email"] != k]
    assert mixed  # activity rows spell these in lower case, the subscriber rows do not
    config = activity_config(tmp_path, sim, sink, db_url, extra="[delivery]\nmax_attempts = 1\n")
    rate = "requests_per_second = 1000"
    config.write_text(config.read_text().replace(rate, f"{rate}\npage_size = 3", 1))
    assert run_cli(config, "sync") == 0
    for email in emails:
        sim.open(LIST, MSG, email)
    sim.convert(LIST, MSG, emails[5], 0.1)
    sim.convert(LIST, MSG, mixed[0], 0.07)
    sim.faults.on_request = _fail_at_fourth_page(sink, fault)
    if fault == "poison":
        sink.faults.poison = {str(truth[mixed[0]]["email"])}
    code = run_cli(config, "sync")
    sim.faults.on_request = None
    sink.faults.reset()
    if fault == "poison":
        assert code == 1  # its events are dead after one refusal
        assert run_cli(config, "retry") == 0
    assert run_cli(config, "sync") == 0
    _one_content_per_id(sink)
    got = list({m["messageId"]: m for m in tracks(sink)}.values())
    opened = [m["anonymousId"] for m in got if m["event"] == "Email Opened"]
    assert sorted(opened) == sorted(str(truth[k]["email"]) for k in emails)
    orders = [m["properties"]["order_total"] for m in got if m["event"] == "Email Converted"]
    assert sorted(orders) == [0.07, 0.1]
