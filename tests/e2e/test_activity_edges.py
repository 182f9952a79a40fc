"""Email activity at its edges: spellings, refusals, sizes and config, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

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


def _verdict(config: Path) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "listrak_source", "--config", str(config), "status", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode, json.loads(done.stdout)["health"]


def test_status_is_not_healthy_while_the_activity_pass_fails(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 5)
    sim.open(LIST, MSG, emails[0])
    config = activity_config(tmp_path, sim, sink, db_url)
    sim.faults.refuse_reporting = 403
    assert run_cli(config, "sync") == 2
    code, health = _verdict(config)
    assert (code, health["verdict"]) == (1, "degraded")
    assert any("activity" in reason and "failed" in reason for reason in health["reasons"])
    sim.faults.refuse_reporting = None
    assert run_cli(config, "sync") == 0
    assert _verdict(config) == (0, {"verdict": "healthy", "exit_status": 0, "reasons": []})


def test_status_is_not_healthy_while_segment_refuses_an_event(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 5)
    config = activity_config(tmp_path, sim, sink, db_url, extra="[delivery]\nmax_attempts = 1\n")
    assert run_cli(config, "sync") == 0
    sim.open(LIST, MSG, emails[0])
    sim.open(LIST, MSG, emails[1])
    sink.faults.poison.add(emails[1])
    assert run_cli(config, "sync") == 1
    assert names(tracks(sink)) == {"Email Opened": 1}
    code, health = _verdict(config)
    assert (code, health["verdict"]) == (1, "degraded")
    assert any("activity" in reason for reason in health["reasons"])


def test_a_new_write_key_does_not_resend_what_the_overlap_reads_again(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 8)
    sim.click(LIST, MSG, LINK, emails[0])
    sim.unsubscribe(LIST, emails[4])
    assert run_cli(activity_config(tmp_path, sim, sink, db_url), "sync") == 0
    assert names(tracks(sink)) == {"Email Opened": 1, "Email Link Clicked": 1, "Unsubscribed": 1}
    # The same database, now feeding a source with another write key: the clicker and the
    # unsubscribe within the overlap are read again, and were sent already.
    with SegmentSink(write_key="another-write-key-0123456789") as other:
        config = activity_config(tmp_path, sim, other, db_url)
        sim.open(LIST, MSG, emails[1])
        assert run_cli(config, "sync") == 0
        assert names(tracks(other)) == {"Email Opened": 1}


def test_a_click_in_the_repeated_hour_is_read_after_a_later_looking_mark(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    # New York falls back at 06:00Z on 2026-11-01: 01:50 EDT comes before 01:05 EST, whose
    # naive date reads 45 minutes earlier than the clicks mark.
    fall_back = datetime(2026, 11, 1, 6, tzinfo=UTC)
    sim.set_now(fall_back - timedelta(hours=3))
    emails = broadcast(sim, 5)
    sim.set_now(fall_back - timedelta(minutes=10))
    sim.click(LIST, MSG, LINK, emails[0])
    extra = '[activity]\nwindow = "3650d"\noverlap = "10m"\n'
    config = activity_config(tmp_path, sim, sink, db_url, extra=extra)
    assert run_cli(config, "sync") == 0
    sim.set_now(fall_back + timedelta(minutes=5))
    sim.click(LIST, MSG, LINK, emails[1])
    sim.set_now(None)
    assert run_cli(config, "sync") == 0
    clicked = [m["anonymousId"] for m in tracks(sink) if m["event"] == "Email Link Clicked"]
    assert sorted(clicked) == sorted(emails[:2])


def test_a_date_ahead_of_the_clock_does_not_hide_the_next_unsubscribes_and_clicks(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 8)
    # One unsubscribe and one click dated a day ahead of this host's clock.
    sim.set_now(datetime.now(UTC) + timedelta(days=1))
    sim.unsubscribe(LIST, emails[0])
    sim.click(LIST, MSG, LINK, emails[1])
    sim.set_now(None)
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    sim.unsubscribe(LIST, emails[2])
    sim.click(LIST, MSG, LINK, emails[3])
    assert run_cli(config, "sync") == 0
    sent = tracks(sink)
    unsubscribed = {m["anonymousId"].lower() for m in sent if m["event"] == "Unsubscribed"}
    clicked = {m["anonymousId"].lower() for m in sent if m["event"] == "Email Link Clicked"}
    assert unsubscribed == {emails[0], emails[2]}
    assert clicked == {emails[1], emails[3]}
    assert_each_once(sink)


def test_a_scheduled_message_is_taken_as_it_is_when_sent(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 5)
    sim.send_message(LIST, 502, emails, subject="Draft", at=datetime.now(UTC) + timedelta(days=2))
    scheduled = sim.messages[LIST][502]
    scheduled.status = "Scheduled"
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    # Edited and sent now: its events carry what was sent, and it is open from now.
    scheduled.status, scheduled.subject = "Sent", "Winter sale"
    scheduled.send_date = sim.messages[LIST][MSG].send_date
    sim.open(LIST, 502, emails[0])
    assert run_cli(config, "sync") == 0
    (opened,) = [m for m in tracks(sink) if m["properties"]["email_id"] == "502"]
    assert opened["properties"]["email_subject"] == "Winter sale"


def test_an_unsubscribe_date_with_its_own_offset_keeps_its_moment(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 5)
    moment = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    sim.unsubscribe(LIST, emails[0])
    sim.override(LIST, emails[0], {"unsubscribeDate": moment.strftime("%Y-%m-%dT%H:%M:%SZ")})
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    (unsubscribed,) = [m for m in tracks(sink) if m["event"] == "Unsubscribed"]
    assert datetime.fromisoformat(unsubscribed["timestamp"]) == moment


def test_a_backfill_after_syncs_sends_the_older_unsubscribes(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim, 6)
    sim.set_now(datetime.now(UTC) - timedelta(days=50))
    sim.unsubscribe(LIST, emails[0])
    sim.set_now(None)
    sim.unsubscribe(LIST, emails[1])
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    unsubscribed = [m["anonymousId"] for m in tracks(sink) if m["event"] == "Unsubscribed"]
    assert [a.lower() for a in unsubscribed] == [emails[1]]
    since = (datetime.now(UTC) - timedelta(days=60)).date().isoformat()
    start = len(sink.messages)
    assert run_cli(config, "activity-backfill", "--since", since) == 0
    later = [m["anonymousId"].lower() for m in tracks(sink, start) if m["event"] == "Unsubscribed"]
    assert later == [emails[0]]
    assert_each_once(sink)


def test_explain_json_gives_activity_times_in_iso_8601(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    emails = broadcast(sim, 3)
    sim.open(LIST, MSG, emails[0])
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    capsys.readouterr()
    assert run_cli(config, "explain", "--json", emails[0]) == 0
    (contact,) = json.loads(capsys.readouterr().out)["contacts"]
    (fact,) = contact["activity"]
    (opened,) = tracks(sink)
    assert fact["at"] == datetime.fromisoformat(opened["timestamp"]).isoformat(timespec="seconds")
