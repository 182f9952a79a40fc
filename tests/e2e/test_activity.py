"""Email activity end to end: simulator, sink, SQLite and PostgreSQL, through the real CLI."""

from __future__ import annotations

from pathlib import Path

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .activity_world import (
    LINK,
    LIST,
    MSG,
    activity_config,
    assert_each_once,
    broadcast,
    names,
    tracks,
)
from .harness import run_cli


def test_late_clicks_and_conversions_reach_segment_once(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim)
    config = activity_config(tmp_path, sim, sink, db_url)
    sim.open(LIST, MSG, emails[0])
    sim.click(LIST, MSG, LINK, emails[1])
    sim.bounce(LIST, MSG, emails[2], "mailbox full")
    assert run_cli(config, "sync") == 0
    first = tracks(sink)
    assert names(first) == {"Email Opened": 2, "Email Link Clicked": 1, "Email Bounced": 1}
    opened = next(m for m in first if m["event"] == "Email Opened")
    assert opened["anonymousId"] == opened["context"]["traits"]["email"]
    assert "userId" not in opened
    props = opened["properties"]
    assert props["email_id"] == str(MSG) and props["list_id"] == str(LIST)
    assert props["email_subject"] == "Spring sale" and props["campaign_name"] == "Spring"
    assert props["list_name"] == "Main"
    # A later run: a late click, a conversion, a complaint.
    sim.click(LIST, MSG, LINK, emails[0])
    sim.convert(LIST, MSG, emails[0], 30.5)
    sim.complain(LIST, MSG, emails[3])
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    later = tracks(sink, start)
    assert names(later) == {
        "Email Link Clicked": 1,
        "Email Converted": 1,
        "Email Marked As Spam": 1,
    }
    converted = next(m for m in later if m["event"] == "Email Converted")
    assert converted["properties"]["order_total"] == 30.5
    # Nothing changed: nothing sent.
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert tracks(sink, start) == []
    assert_each_once(sink)
