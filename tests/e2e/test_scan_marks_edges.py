"""Scans of many small pages, where contacts from the third page on are found unchanged by
their marks: what a config change, a list changing while it is read, a page shift that
leaves a subscriber to be confirmed one by one, and a dry run make of them."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    run_cli,
    write_config,
)

LIST = 1001
WITH_FIELD = {"id": LIST, "user_id_field": FIELD}


def _config(
    tmp: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, **item: object
) -> Path:
    """Pages of 3 contacts: a list of dozens is read in over ten pages."""
    path = write_config(tmp / "config.toml", sim, sink, db_url, [{"id": LIST, **item}])
    rate = "requests_per_second = 1000"
    path.write_text(path.read_text().replace(rate, f"{rate}\npage_size = 3", 1))
    return path


def _sent_since(sink: SegmentSink, start: int) -> set[str]:
    return {str(m["anonymousId"]).lower() for m in sink.messages[start:]}


def _contact_pages(path: str) -> bool:
    return path.endswith(f"/List/{LIST}/Contact")


def test_a_user_id_field_named_then_dropped_sends_only_real_changes(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 40, field_id=FIELD, seed=3)
    assert run_cli(_config(tmp_path, sim, sink, db_url), "sync") == 0
    # The field is named: every contact with a value gains its userId, the others nothing.
    start = len(sink.messages)
    assert run_cli(_config(tmp_path, sim, sink, db_url, user_id_field=FIELD), "sync") == 0
    truth = sim.truth(LIST, FIELD)
    assert _sent_since(sink, start) == {k for k, v in truth.items() if v["user_id"]}
    assert_profiles_match(sim, sink, [WITH_FIELD])
    # Dropped, then named again: the rows still hold those userIds, so nothing goes out.
    for item in ({}, {"user_id_field": FIELD}):
        start = len(sink.messages)
        assert run_cli(_config(tmp_path, sim, sink, db_url, **item), "sync") == 0
        assert _sent_since(sink, start) == set()
    assert_no_change_under_two_ids(sink.messages)


def test_changes_made_while_the_list_is_read_are_all_sent(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 40, field_id=FIELD, seed=4)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    assert run_cli(config, "sync") == 0
    truth = sim.truth(LIST, FIELD)
    keys = sorted(truth)
    served: list[str] = []

    def edit_after_the_marks_are_read(path: str) -> None:
        served.append(path)
        if sum(map(_contact_pages, served)) != 4:
            return
        for key in keys[::4]:
            sim.set_field(LIST, str(truth[key]["email"]), FIELD, f"edited-{key}")
        for key in keys[1::9]:
            sim.set_field(LIST, str(truth[key]["email"]), FIELD, None)
        sim.unsubscribe(LIST, str(truth[keys[2]]["email"]))

    sim.faults.on_request = edit_after_the_marks_are_read
    assert run_cli(config, "sync") in (0, 1)
    sim.faults.on_request = None
    # What the first read missed (pages read before the edits), the next one sends.
    assert run_cli(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


def test_a_subscriber_a_page_shift_hid_is_read_alone_with_its_new_user_id(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 30, field_id=FIELD, field_ratio=1.0, seed=6)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    assert run_cli(config, "sync") == 0
    keys = sorted(sim.truth(LIST, FIELD))
    truth = sim.truth(LIST, FIELD)
    sim.faults.offset_cursors = True
    served: list[str] = []

    def shift(path: str) -> None:
        served.append(path)
        if sum(map(_contact_pages, served)) == 5:
            # A contact of page 1 leaves: every later one moves back a place, and the
            # first of the next page is served by none.
            sim.remove(LIST, str(truth[keys[0]]["email"]))
            for key in keys[1:]:
                sim.set_field(LIST, str(truth[key]["email"]), FIELD, f"moved-{key}")

    sim.faults.on_request = shift
    assert run_cli(config, "sync", "--full") == 0
    sim.faults.on_request = None
    sim.faults.offset_cursors = False
    assert run_cli(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


def _dry_run(config: Path) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_cli(config, "sync", "--dry-run")
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def _identifies(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (m["anonymousId"], m.get("userId"), json.dumps(m["traits"], sort_keys=True))
        for m in messages
    )


def test_a_dry_run_prints_what_the_sync_after_it_sends(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 40, field_id=FIELD, seed=5)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    first = _dry_run(config)
    assert run_cli(config, "sync") == 0
    assert _identifies(first) == _identifies(sink.messages)
    truth = sim.truth(LIST, FIELD)
    keys = sorted(truth)
    for key in keys[::5]:
        sim.set_field(LIST, str(truth[key]["email"]), FIELD, f"x{key}")
    for key in keys[3::7]:
        sim.unsubscribe(LIST, str(truth[key]["email"]))
    sim.subscribe(LIST, "New.One@Example.com", {FIELD: "n1"})
    printed = _dry_run(config)
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert printed and _identifies(printed) == _identifies(sink.messages[start:])
