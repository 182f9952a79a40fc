"""Email activity under faults: Listrak and Segment failing, rows moving while read, a refused
Reporting area, two write keys, and kill -9 at random instants."""

from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

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
from .harness import run_cli, worker


def facts_once(sim: ListrakSimulator, sink: SegmentSink, message_id: int = MSG) -> None:
    """Every fact Listrak holds reached the sink under exactly one id, and nothing else did."""
    ids: dict[tuple[Any, ...], set[str]] = defaultdict(set)
    totals: dict[str, float] = defaultdict(float)
    for m in tracks(sink):
        email, event = m["anonymousId"].lower(), m["event"]
        if event == "Email Converted":
            if m["messageId"] not in ids[(event, email, m["messageId"])]:
                totals[email] += m["properties"]["order_total"]
            ids[(event, email, m["messageId"])].add(m["messageId"])
        elif event == "Email Link Clicked":
            ids[(event, email, m["timestamp"])].add(m["messageId"])
        else:
            ids[(event, email)].add(m["messageId"])
    assert all(len(v) == 1 for v in ids.values())
    message = sim.message(LIST, message_id)
    for key, row in message.rows.items():
        assert ((("Email Opened", key)) in ids) == row.open, key
        assert ((("Email Bounced", key)) in ids) == row.bounce, key
        assert ((("Email Marked As Spam", key)) in ids) == row.abuse, key
        assert abs(totals[key] - row.order_total) < 1e-6, key
    clicks = {(e.lower(), d) for e, d in message.links[LINK].clickers}
    assert len([k for k in ids if k[0] == "Email Link Clicked"]) == len(clicks)


def activity(sim: ListrakSimulator, emails: list[str], rng: random.Random, n: int = 8) -> None:
    """Opens, clicks, conversions, bounces and complaints on a few rows."""
    for email in rng.sample(emails, n):
        action = rng.choice(["open", "click", "convert", "bounce", "complain"])
        if action == "click":
            sim.click(LIST, MSG, LINK, email)
        elif action == "convert":
            sim.convert(LIST, MSG, email, rng.choice([9.99, 25.0]))
        else:
            getattr(sim, action)(LIST, MSG, email)


def test_listrak_failing_mid_message_then_healthy(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    rng = random.Random(1)
    emails = broadcast(sim, 60)
    activity(sim, emails, rng, 30)
    extra = "[activity]\nmax_requests = 1000\n"
    config = activity_config(tmp_path, sim, sink, db_url, extra=extra)
    text = config.read_text().replace(
        "requests_per_second = 1000",
        "requests_per_second = 1000\nmax_attempts = 1\npage_size = 10",
        1,
    )
    config.write_text(text)

    def fail(message_id: int, page: int) -> None:
        if page == 2:
            sim.faults.on_activity_page = None
            sim.faults.fail_next(1, 500)

    sim.faults.on_activity_page = fail
    assert run_cli(config, "sync") == 1
    activity(sim, emails, rng, 10)
    assert run_cli(config, "sync") == 0
    facts_once(sim, sink)


def test_segment_down_for_a_run_then_back(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    rng = random.Random(2)
    emails = broadcast(sim, 40)
    activity(sim, emails, rng, 20)
    config = activity_config(tmp_path, sim, sink, db_url)
    sink.faults.fail_share(1.0, 503)
    assert run_cli(config, "sync") == 1
    assert tracks(sink) == []
    sink.faults.reset()
    activity(sim, emails, rng, 10)
    assert run_cli(config, "sync") == 0
    facts_once(sim, sink)
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert tracks(sink, start) == []


def test_rows_moving_while_a_pass_reads_them(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    rng = random.Random(3)
    emails = broadcast(sim, 50)
    config = activity_config(tmp_path, sim, sink, db_url)
    config.write_text(
        config.read_text().replace(
            "requests_per_second = 1000", "requests_per_second = 1000\npage_size = 7", 1
        )
    )
    sim.faults.shift_activity = True
    sim.faults.offset_cursors = True  # a move before the offset makes the pass skip a row

    def during(message_id: int, page: int) -> None:
        if page in (1, 3):
            activity(sim, emails, rng, 3)

    sim.faults.on_activity_page = during
    assert run_cli(config, "sync") == 0
    sim.faults.on_activity_page = None
    assert run_cli(config, "sync") == 0  # what the moves hid, the next pass finds
    facts_once(sim, sink)


def test_no_reporting_area_is_one_line_and_the_subscribers_carry_on(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, capsys: Any
) -> None:
    emails = broadcast(sim, 10)
    sim.open(LIST, MSG, emails[0])
    sim.add_list(2002, "Other")
    sim.seed(2002, 5, seed=9)
    lists = [{"id": LIST, "activity": True}, {"id": 2002}]
    config = activity_config(tmp_path, sim, sink, db_url, lists=lists)
    sim.faults.refuse_reporting = 403
    assert run_cli(config, "sync") == 2
    out = capsys.readouterr().out
    assert "Reporting area" in out and out.count("Reporting area") == 1
    assert "list 2002: ok" in out
    assert len([m for m in sink.messages if m["type"] == "identify"]) == 15
    sim.faults.refuse_reporting = None
    assert run_cli(config, "sync") == 0
    assert names(tracks(sink)) == {"Email Opened": 1}


def test_two_write_keys_get_two_ids_for_one_fact(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, sqlite_url: str
) -> None:
    emails = broadcast(sim, 10)
    sim.open(LIST, MSG, emails[0])
    one = activity_config(tmp_path, sim, sink, db_url)
    assert run_cli(one, "sync") == 0
    with SegmentSink(write_key="another-write-key-0123456789") as other_sink:
        folder = tmp_path / "other"
        folder.mkdir()
        url = sqlite_url.replace("state.db", "other.db")
        assert run_cli(activity_config(folder, sim, other_sink, url), "sync") == 0
        (theirs,) = [m for m in tracks(other_sink) if m["event"] == "Email Opened"]
    (ours,) = [m for m in tracks(sink) if m["event"] == "Email Opened"]
    assert ours["messageId"] != theirs["messageId"]
    # The same fact under the same key, from a fresh database: the same id.
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    again = activity_config(fresh, sim, sink, sqlite_url.replace("state.db", "fresh.db"))
    assert run_cli(again, "sync") == 0
    ids = {m["messageId"] for m in tracks(sink) if m["event"] == "Email Opened"}
    assert ids == {ours["messageId"]}


SMALL = {"LISTRAK_SOURCE_LISTRAK__PAGE_SIZE": "25", "LISTRAK_SOURCE_SEGMENT__CHUNK_SIZE": "40"}


def test_kill_9_at_random_instants_sends_each_fact_once(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    rng = random.Random(20261206)
    emails = broadcast(sim, 400)
    activity(sim, emails, rng, 150)
    sim.faults.on_activity_page = lambda _m, _p: time.sleep(0.01)
    config = activity_config(tmp_path, sim, sink, db_url)
    log = tmp_path / "worker.log"
    for _ in range(6):
        proc = worker(config, "sync", env=SMALL, log=log)
        time.sleep(rng.uniform(0.3, 2.0))
        activity(sim, emails, rng, 15)  # between, or during, runs
        proc.kill()
        proc.wait()
    proc = worker(config, "sync", env=SMALL, log=log)
    assert proc.wait(timeout=120) == 0, log.read_text()[-2000:]
    facts_once(sim, sink)
    received = len(sink.messages)
    proc = worker(config, "sync", env=SMALL, log=log)
    assert proc.wait(timeout=120) == 0
    assert len(sink.messages) == received


def test_an_event_segment_refuses_dies_alone_and_retry_sends_it(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, capsys: Any
) -> None:
    emails = broadcast(sim, 10)
    for email in emails[:3]:
        sim.open(LIST, MSG, email)
    extra = "[delivery]\nmax_attempts = 1\n"
    config = activity_config(tmp_path, sim, sink, db_url, extra=extra)
    sink.faults.poison = {emails[1].lower()}
    assert run_cli(config, "sync") == 1
    assert {m["anonymousId"] for m in tracks(sink)} == {emails[0], emails[2]}
    sink.faults.poison = set()
    capsys.readouterr()
    assert run_cli(config, "retry") == 0
    assert "1 dead activity event(s) re-queued" in capsys.readouterr().out
    assert run_cli(config, "sync") == 0
    assert {m["anonymousId"] for m in tracks(sink)} == set(emails[:3])
    assert_each_once(sink)
