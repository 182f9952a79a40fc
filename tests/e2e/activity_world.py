"""Helpers for the activity tests: a list with a broadcast, and the track events the sink kept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import write_config

LIST = 1001
MSG = 501
LINK = 42


def activity_config(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    *,
    extra: str = "",
    lists: list[dict[str, Any]] | None = None,
) -> Path:
    """A config with one activity list (and any others given)."""
    chosen = lists if lists is not None else [{"id": LIST, "activity": True}]
    return write_config(tmp_path / "config.toml", sim, sink, db_url, chosen, extra=extra)


def broadcast(sim: ListrakSimulator, count: int = 20, message_id: int = MSG) -> list[str]:
    """A list of `count` subscribers, a campaign, and one message sent to all of them."""
    if LIST not in sim.lists:
        sim.add_list(LIST, "Main")
        sim.seed(LIST, count, seed=3)
    emails = sorted(sim.truth(LIST))
    sim.add_campaign(LIST, 9, "Spring")
    sim.send_message(LIST, message_id, emails, subject="Spring sale", campaign_id=9)
    sim.add_link(LIST, message_id, LINK, "https://shop.test/spring")
    return emails


def tracks(sink: SegmentSink, start: int = 0) -> list[dict[str, Any]]:
    """The track calls the sink kept, from `start`."""
    return [m for m in sink.messages[start:] if m.get("type") == "track"]


def names(messages: list[dict[str, Any]]) -> Counter[str]:
    """How many of each event."""
    return Counter(m["event"] for m in messages)


def assert_each_once(sink: SegmentSink) -> None:
    """No fact twice: every track call the sink kept has an id of its own."""
    ids = [m["messageId"] for m in tracks(sink)]
    assert len(ids) == len(set(ids))
