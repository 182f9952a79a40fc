"""Email activity at its edges: spellings, refusals, sizes and config, through the real CLI."""

from __future__ import annotations

from pathlib import Path

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .activity_world import LINK, LIST, MSG, activity_config, assert_each_once, names, tracks
from .harness import run_cli


def test_track_events_use_the_spelling_the_identify_carried(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main")
    sim.subscribe(LIST, "Ann.Smith@Example.com")
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    (identify,) = [m for m in sink.messages if m["type"] == "identify"]
    # Listrak's activity rows and clickers spell the address their own way.
    sim.send_message(LIST, MSG, ["ann.smith@example.com"], subject="Spring sale")
    sim.add_link(LIST, MSG, LINK, "https://shop.test/spring")
    sim.click(LIST, MSG, LINK, "ann.smith@example.com")
    assert run_cli(config, "sync") == 0
    sent = tracks(sink)
    assert names(sent) == {"Email Opened": 1, "Email Link Clicked": 1}
    for event in sent:
        assert event["anonymousId"] == identify["anonymousId"] == "Ann.Smith@Example.com"
        assert event["context"]["traits"]["email"] == identify["anonymousId"]
    assert_each_once(sink)
