"""Email activity end to end: simulator, sink, SQLite and PostgreSQL, through the real CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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


def _old_and_new(sim: ListrakSimulator) -> list[str]:
    """A message sent 60 days ago (outside the window) and one sent now, with activity."""
    now = datetime.now(UTC)
    sim.set_now(now - timedelta(days=60))
    emails = broadcast(sim, message_id=400)
    sim.open(LIST, 400, emails[0])
    sim.set_now(now)
    broadcast(sim)
    sim.open(LIST, MSG, emails[1])
    sim.set_now(None)
    return emails


def test_backfill_then_sync_sends_nothing_twice(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    _old_and_new(sim)
    config = activity_config(tmp_path, sim, sink, db_url)
    since = (datetime.now(UTC) - timedelta(days=70)).date().isoformat()
    assert run_cli(config, "activity-backfill", "--since", since) == 0
    backfilled = tracks(sink)
    assert names(backfilled) == {"Email Opened": 2}
    assert not [m for m in sink.messages if m["type"] == "identify"]
    old = next(m for m in backfilled if m["properties"]["email_id"] == "400")
    assert datetime.fromisoformat(old["timestamp"]) < datetime.now(UTC) - timedelta(days=59)
    start = len(sink.messages)
    assert run_cli(config, "activity-backfill", "--since", since) == 0  # resumable
    assert run_cli(config, "sync") == 0
    assert tracks(sink, start) == []
    assert_each_once(sink)


def test_baseline_then_sync_sends_only_what_is_newer(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = _old_and_new(sim)
    config = activity_config(tmp_path, sim, sink, db_url)
    since = (datetime.now(UTC) - timedelta(days=70)).date().isoformat()
    assert run_cli(config, "activity-baseline", "--since", since) == 0
    assert tracks(sink) == []
    sim.click(LIST, MSG, LINK, emails[1])
    assert run_cli(config, "sync") == 0
    assert names(tracks(sink)) == {"Email Link Clicked": 1}


def test_the_window_edge(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    _old_and_new(sim)
    config = activity_config(tmp_path, sim, sink, db_url, extra='[activity]\nwindow = "59d"\n')
    assert run_cli(config, "sync") == 0
    assert {m["properties"]["email_id"] for m in tracks(sink)} == {str(MSG)}


def test_a_list_without_activity_sends_no_track_event(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim)
    sim.open(LIST, MSG, emails[0])
    sim.unsubscribe(LIST, emails[1])
    config = activity_config(tmp_path, sim, sink, db_url, lists=[{"id": LIST}])
    assert run_cli(config, "sync") == 0
    assert tracks(sink) == [] and sink.messages


def test_unsubscribes_within_the_window(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    emails = broadcast(sim)
    sim.set_now(datetime.now(UTC) - timedelta(days=50))
    sim.unsubscribe(LIST, emails[0], method="Hygiene")
    sim.set_now(None)
    sim.unsubscribe(LIST, emails[1], method="Unsubscribe")
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    (unsub,) = [m for m in tracks(sink) if m["event"] == "Unsubscribed"]
    assert unsub["anonymousId"] == emails[1]
    assert unsub["properties"] == {
        "list_id": str(LIST),
        "list_name": "Main",
        "unsubscribe_type": "Unsubscribe",
    }
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert tracks(sink, start) == []


def test_status_explain_and_check_show_activity(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, capsys: Any
) -> None:
    emails = broadcast(sim)
    sim.open(LIST, MSG, emails[0])
    sim.click(LIST, MSG, LINK, emails[0])
    config = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    capsys.readouterr()
    assert run_cli(config, "status", "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)["activity"]
    assert row["open_messages"] == 1 and row["last_pass_status"] == "ok"
    assert row["events"]["Email Opened"] == {"pending": 0, "sent": 1, "dead": 0}
    assert run_cli(config, "status") == 0
    text = capsys.readouterr().out
    assert "Email Link Clicked: 0 pending, 1 sent, 0 dead" in text
    assert emails[0] not in text
    assert run_cli(config, "explain", emails[0].upper()) == 0
    explained = capsys.readouterr().out
    assert "Email Link Clicked" in explained and "https://shop.test/spring" in explained
    assert run_cli(config, "check") == 0
    checked = capsys.readouterr().out
    assert "listrak time zone" in checked and "America/New_York" in checked
    assert "the Reporting area answers" in checked
    sim.faults.refuse_reporting = 401
    assert run_cli(config, "check") == 2
    assert "enable the Reporting area" in capsys.readouterr().out


def test_a_short_budget_reads_the_newest_first_and_the_rest_next(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, capsys: Any
) -> None:
    emails = broadcast(sim, 10)
    sim.set_now(datetime.now(UTC) + timedelta(minutes=1))
    sim.send_message(LIST, 502, emails, subject="Newer")
    sim.set_now(None)
    sim.open(LIST, MSG, emails[0])
    sim.open(LIST, 502, emails[1])
    # The list, unsubscribes, messages, a campaign, two details, then the newer message's
    # links and rows: 8; the older one's links make 9, and its clickers wait.
    config = activity_config(tmp_path, sim, sink, db_url, extra="[activity]\nmax_requests = 9\n")
    assert run_cli(config, "sync") == 1
    assert [m["properties"]["email_id"] for m in tracks(sink)] == ["502"]
    capsys.readouterr()
    run_cli(config, "status", "--json")
    (row,) = json.loads(capsys.readouterr().out)["activity"]
    assert (row["last_pass_status"], row["deferred_messages"]) == ("partial", 1)
    for _ in range(3):
        run_cli(config, "sync")
    assert sorted(m["properties"]["email_id"] for m in tracks(sink)) == ["501", "502"]
    assert_each_once(sink)


def test_a_budget_spent_before_any_message_is_read_is_not_ok(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, capsys: Any
) -> None:
    emails = broadcast(sim, 5)
    sim.open(LIST, MSG, emails[0])
    # The list and the unsubscribes take the whole budget: the open message is not reached.
    extra = "[activity]\nmax_requests = 2\n"
    config = activity_config(tmp_path, sim, sink, db_url, extra=extra)
    assert run_cli(config, "sync") == 1
    assert tracks(sink) == []
    said = capsys.readouterr()
    assert "max_requests (2) spent before the open messages were read" in said.out + said.err
    run_cli(config, "status", "--json")
    (row,) = json.loads(capsys.readouterr().out)["activity"]
    assert row["last_pass_status"] == "partial"
    config.write_text(config.read_text().replace("max_requests = 2", "max_requests = 1000"))
    assert run_cli(config, "sync") == 0
    assert names(tracks(sink)) == {"Email Opened": 1}


def test_email_sent_on_request_and_a_dry_run_prints_tracks(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, capsys: Any
) -> None:
    emails = broadcast(sim, 5)
    sim.open(LIST, MSG, emails[0])
    extra = '[activity]\nevents = ["Email Sent", "Email Opened"]\n'
    config = activity_config(tmp_path, sim, sink, db_url, extra=extra)
    capsys.readouterr()
    assert run_cli(config, "sync", "--dry-run") == 0
    shown = capsys.readouterr()
    printed = [json.loads(line) for line in shown.out.splitlines()]
    assert names([m for m in printed if m["type"] == "track"]) == {
        "Email Sent": 5,
        "Email Opened": 1,
    }
    assert sink.messages == []
    # A dry run says what a real run would send, never that it sent anything.
    assert "would send 6" in shown.err and " sent" not in shown.err
    assert run_cli(config, "activity-backfill", "--since", "2020-01-01", "--dry-run") == 0
    backfill = capsys.readouterr().err
    assert "would send 6" in backfill and " sent" not in backfill
    assert run_cli(config, "sync") == 0
    sent = [m for m in tracks(sink) if m["event"] == "Email Sent"]
    assert len(sent) == 5 and sent[0]["timestamp"] == opened_or_sent_at(sim)
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert tracks(sink, start) == []


def opened_or_sent_at(sim: ListrakSimulator) -> str:
    """The message's sendDate, read in New York time, as Segment receives it."""
    naive = datetime.fromisoformat(sim.message(LIST, MSG).send_date)
    aware = naive.replace(tzinfo=ZoneInfo("America/New_York")).astimezone(UTC)
    return aware.isoformat(timespec="milliseconds")


def test_activity_commands_refuse_lists_without_activity(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str, capsys: Any
) -> None:
    broadcast(sim)
    config = activity_config(tmp_path, sim, sink, sqlite_url, lists=[{"id": LIST}])
    assert run_cli(config, "activity-backfill", "--since", "2026-01-01") == 2
    assert "activity = true" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        run_cli(config, "activity-baseline", "--since", "2026-13-01")
    assert exited.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
