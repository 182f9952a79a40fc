"""Only a positive fact from Listrak removes a trait: absence alone is confirmed first."""

from __future__ import annotations

import dataclasses
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from listrak_source.cli.wiring import run_context
from listrak_source.config import load_settings
from listrak_source.records import RunStatus
from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles
from listrak_source.subscribers.sync import sync_list

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    member_rows,
    run_cli,
    status_json,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}
TRAIT = "Listrak_list_1001"


@pytest.fixture
def seeded(sim: ListrakSimulator) -> ListrakSimulator:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 40, field_id=FIELD, seed=11)
    return sim


def test_a_contact_the_scan_returned_but_could_not_parse_is_not_removed(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    pending, bad_field = sorted(seeded.truth(1001, FIELD))[:2]
    for email in (pending, bad_field):
        seeded.remove(1001, email)
    seeded.add_raw(1001, {"emailAddress": pending, "subscriptionState": "Pending"})
    seeded.add_raw(
        1001,
        {
            "emailAddress": bad_field,
            "subscriptionState": "Subscribed",
            "segmentationFieldValues": [{"segmentationFieldId": "seventy-seven", "value": "x"}],
        },
    )
    start = len(sink.messages)
    assert run_cli(config, "sync") == 1  # partial: two contacts skipped
    assert sink.messages[start:] == []
    profiles = rebuild_profiles(sink.messages)
    assert profiles[pending]["traits"][TRAIT] is True
    assert profiles[bad_field]["traits"][TRAIT] is True
    rows = member_rows(db_url, 1001)
    assert rows[pending]["desired_subscribed"] and rows[bad_field]["desired_subscribed"]
    assert status_json(config)[1001]["last_run"]["rejected"] == 2


def serve_then(sim: ListrakSimulator, monkeypatch: pytest.MonkeyPatch, action) -> None:
    """Run `action(first page's emails)` right after the simulator serves the next scan page."""
    original = sim.page
    done = False

    def page(list_id, query):
        nonlocal done
        data, after, served = original(list_id, query)
        if not done:
            done = True
            action([c["emailAddress"] for c in json.loads(data)])
        return data, after, served

    monkeypatch.setattr(sim, "page", page)


def single_reads(sim: ListrakSimulator, start: int) -> int:
    return sum(1 for r in sim.requests[start:] if "/contact/" in r.path.lower())


def test_a_page_shift_mid_scan_does_not_remove_a_contact_who_never_left(
    tmp_path: Path,
    seeded: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "10")
    seeded.faults.offset_cursors = True
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    left: list[str] = []

    def unsubscribe_first(emails: list[str]) -> None:
        seeded.unsubscribe(1001, emails[0])
        left.append(emails[0].lower())

    serve_then(seeded, monkeypatch, unsubscribe_first)
    start, requests = len(sink.messages), len(seeded.requests)
    assert run_cli(config, "sync") == 0
    # One contact moved onto the page already read and was never served: a single read
    # finds it subscribed, so nothing is sent.
    assert sink.messages[start:] == []
    assert single_reads(seeded, requests) == 1
    requests = len(seeded.requests)
    assert run_cli(config, "sync") == 0
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        (left[0], None)
    ]
    assert single_reads(seeded, requests) == 1  # the one who left, confirmed unsubscribed
    assert_profiles_match(seeded, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)


@pytest.mark.parametrize("state", ["Subscribed", "Unsubscribed", None])
def test_a_read_answered_with_another_address_confirms_nothing_and_sends_nothing(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str, state: str | None
) -> None:
    """The unseen subscriber is kept and the run says so; the other address is no fact
    about it, nor one about itself."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    email = sorted(seeded.truth(1001, FIELD))[0]
    # Dated before the last full scan, so Listrak's report of unsubscribes since then,
    # asked when a read says nothing, does not name it either.
    seeded.set_now(datetime.now(UTC) - timedelta(days=2))
    seeded.unsubscribe(1001, email)
    seeded.set_now(None)
    other = {"emailAddress": "other@example.com", "subscriptionState": state}
    seeded.faults.on_request = _answer_reads_of(seeded, email, other)
    start, requests = len(sink.messages), len(seeded.requests)
    assert run_cli(config, "sync") == 1
    assert sink.messages[start:] == [] and single_reads(seeded, requests) == 1
    status = status_json(config)[1001]
    assert status["last_run"]["status"] == "partial"
    reasons = [r["reason"] for r in status["rejects"]]
    assert reasons == ["Listrak answered a read of this contact with another address"]
    assert "other@example.com" not in member_rows(db_url, 1001)
    seeded.faults.on_request = None
    seeded.clear_override(1001, email)
    assert run_cli(config, "sync") == 0
    sent = [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]]
    assert sent == [(email, None)]
    assert_profiles_match(seeded, sink, [MAIN])


def _answer_reads_of(sim: ListrakSimulator, email: str, answer: dict[str, Any]) -> Any:
    """A hook that serves `answer` to a read of this one contact, and the contact as it is
    to every other request."""

    def hook(path: str) -> None:
        if path.lower().endswith(f"/contact/{email}"):
            sim.override(1001, email, answer)
        else:
            sim.clear_override(1001, email)

    return hook


def test_a_read_that_names_no_state_is_settled_by_listraks_report_of_unsubscribes(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """The one unseen subscriber's read says nothing of its state: the report names it
    unsubscribed, which removes it in the same run."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    email = sorted(seeded.truth(1001, FIELD))[0]
    seeded.unsubscribe(1001, email)
    seeded.override(1001, email, {"subscriptionState": None})
    start, requests = len(sink.messages), len(seeded.requests)
    assert run_cli(config, "sync") == 0
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        (email, None)
    ]
    scans = [r.query for r in seeded.requests[requests:] if r.path.endswith("/Contact")]
    assert [q["subscriptionState"] for q in scans] == ["Subscribed", "Unsubscribed"]
    assert single_reads(seeded, requests) == 1
    assert status_json(config)[1001]["rejects"] == []
    assert_profiles_match(seeded, sink, [MAIN])


def test_a_read_without_an_address_is_about_the_subscriber_asked_about(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Unreadable, it is skipped for that subscriber; the report it asks for names them
    unsubscribed, which settles it: removed, and the run is ok."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    email = sorted(seeded.truth(1001, FIELD))[0]
    seeded.unsubscribe(1001, email)
    seeded.faults.on_request = _answer_reads_of(seeded, email, {"emailAddress": None})
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    seeded.faults.on_request = None
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        (email, None)
    ]
    assert_profiles_match(seeded, sink, [MAIN])


def test_listraks_report_is_newer_than_the_reads_before_it(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """One read says nothing, so the report is read; another unseen subscriber was back
    when it was read, and has left again when the report names it: it ends removed."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    silent, back = sorted(seeded.truth(1001, FIELD))[:2]
    for email in (silent, back):
        seeded.unsubscribe(1001, email)
    answered: list[str] = []

    def hook(path: str) -> None:
        read = path.lower().rsplit("/contact/", 1)[-1] if "/contact/" in path.lower() else ""
        if read == silent:
            seeded.override(1001, silent, {"subscriptionState": None})
        else:
            seeded.clear_override(1001, silent)
        if read == back:
            seeded.subscribe(1001, back)
            answered.append(back)
        elif path.endswith("/Contact") and answered == [back]:
            seeded.unsubscribe(1001, back)  # the report's request
            answered.append("report")

    seeded.faults.on_request = hook
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert answered == [back, "report"]
    seeded.faults.on_request = None
    held = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert held == {silent: None, back: None}
    assert_profiles_match(seeded, sink, [MAIN])


def test_more_unseen_than_confirm_unseen_max_wait_for_a_second_full_scan(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    extra = "[delivery]\nconfirm_unseen_max = 2\n"
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN], extra=extra)
    assert run_cli(config, "sync") == 0
    emails = sorted(seeded.truth(1001, FIELD))
    for email in emails[:3]:
        seeded.remove(1001, email)
    for email in emails[3:5]:
        seeded.unsubscribe(1001, email)
    start, requests = len(sink.messages), len(seeded.requests)
    assert run_cli(config, "sync") == 1  # partial: three wait, and Segment still has them
    # The unsubscribes are facts from an Unsubscribed scan; the removals wait.
    sent = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert sent == {emails[3]: None, emails[4]: None}
    contact_scans = [r.query for r in seeded.requests[requests:] if r.path.endswith("/Contact")]
    assert [q["subscriptionState"] for q in contact_scans] == ["Subscribed", "Unsubscribed"]
    assert "startDate" in contact_scans[1] and single_reads(seeded, requests) == 0
    last = status_json(config)[1001]["last_run"]
    assert last["status"] == "partial" and "3 subscriber(s) not seen" in last["error"]
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    sent = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert sent == {email: None for email in emails[:3]}
    assert_profiles_match(seeded, sink, [MAIN])


def test_runs_between_full_scans_say_the_unseen_still_wait(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Incremental runs after a full scan that left unseen subscribers for the next one
    cannot see them: partial, saying how many wait, until that full scan settles them."""
    extra = "[delivery]\nconfirm_unseen_max = 1\n"
    item = {**MAIN, "full_scan_every": "1h"}
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [item], extra=extra)
    assert run_cli(config, "sync") == 0
    assert run_cli(config, "sync") == 0  # incremental, nothing left waiting
    emails = sorted(seeded.truth(1001, FIELD))
    for email in emails[:2]:
        seeded.remove(1001, email)
    assert run_cli(config, "sync", "--full") == 1
    start = len(sink.messages)
    assert run_cli(config, "sync") == 1
    assert sink.messages[start:] == []
    last = status_json(config)[1001]["last_run"]
    assert last["status"] == "partial" and not last["full_scan"]
    assert "2 subscriber(s) not seen by the last full scan" in last["error"]
    assert run_cli(config, "sync", "--full") == 0
    sent = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert sent == {email: None for email in emails[:2]}
    assert run_cli(config, "sync") == 0
    assert_profiles_match(seeded, sink, [item])


@pytest.mark.parametrize("extra", ["[delivery]\nconfirm_unseen_max = 2\n", ""])
def test_a_run_after_a_held_full_scan_says_the_missed_still_wait(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str, extra: str
) -> None:
    """Too many to read one by one, or few enough but none of them in Listrak, and too
    many to remove: held; the runs until the next full scan say they wait."""
    item = {**MAIN, "full_scan_every": "1h"}
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [item], extra=extra)
    assert run_cli(config, "sync") == 0
    for email in sorted(seeded.truth(1001, FIELD))[:30]:
        seeded.remove(1001, email)
    assert run_cli(config, "sync", "--full") == 1
    assert status_json(config)[1001]["last_run"]["status"] == "held"
    assert run_cli(config, "sync") == 1
    last = status_json(config)[1001]["last_run"]
    assert not last["full_scan"] and last["status"] == "partial"
    assert "30 subscriber(s) not seen by the last full scan" in last["error"]


def test_the_first_sight_of_a_mass_disappearance_is_held_not_ok(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str, capsys
) -> None:
    extra = "[delivery]\nconfirm_unseen_max = 2\n"
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN], extra=extra)
    assert run_cli(config, "sync") == 0
    emails = sorted(seeded.truth(1001, FIELD))
    for email in emails[:33]:  # 82 % of the list gone from its scans, none unsubscribed
        seeded.remove(1001, email)
    start = len(sink.messages)
    capsys.readouterr()
    assert run_cli(config, "sync") == 1
    assert "held" in capsys.readouterr().out
    last = status_json(config)[1001]["last_run"]
    assert last["status"] == "held" and "did not see 33 of 40 subscribers (82%" in last["error"]
    assert len(sink.messages) == start  # nothing removed on first sight
    assert run_cli(config, "sync") == 1  # missed again: still held, still nothing removed
    assert len(sink.messages) == start
    assert status_json(config)[1001]["last_run"]["status"] == "held"
    assert run_cli(config, "sync", "--allow-mass-removal") == 0
    assert_profiles_match(seeded, sink, [MAIN])


class _StopOnFirstRead:
    """Listrak, with a stop signal arriving as the first unseen subscriber is read."""

    def __init__(self, listrak: Any, stop: threading.Event) -> None:
        self._listrak, self._stop = listrak, stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self._listrak, name)

    def get_contact(self, *args: Any, **kwargs: Any) -> Any:
        self._stop.set()
        return self._listrak.get_contact(*args, **kwargs)


def test_a_stop_while_unseen_subscribers_are_confirmed_delivers_what_is_stored(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    emails = sorted(seeded.truth(1001, FIELD))
    for email in emails[:3]:
        seeded.remove(1001, email)
    seeded.subscribe(1001, "newcomer@example.com")
    start = len(sink.messages)
    settings = load_settings(config)
    with run_context(settings) as real:
        ctx = dataclasses.replace(real, listrak=_StopOnFirstRead(real.listrak, real.stop))
        result = sync_list(ctx, settings.lists[0])
    assert result.status == RunStatus.STOPPED and result.delivered == 1
    assert "confirming unseen subscribers" in (result.error or "")
    sent = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert sent == {"newcomer@example.com": True}  # delivered; nobody removed
    assert status_json(config)[1001]["last_run"]["status"] == "stopped"
    assert run_cli(config, "sync") == 0
    assert_profiles_match(seeded, sink, [MAIN])


def _on_read_of(sim: ListrakSimulator, email: str, action: Any) -> None:
    """Run `action` as Listrak receives the single read of this contact."""

    def hook(path: str) -> None:
        if path.lower().endswith(f"/contact/{email}"):
            action()

    sim.faults.on_request = hook


def test_a_404_that_is_not_listraks_not_found_confirms_nothing(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """A gateway's 404 page in place of Listrak's answer says nothing about the contact:
    it is kept and the run says so; the next run, answered by Listrak, removes it."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    email = sorted(seeded.truth(1001, FIELD))[0]
    seeded.remove(1001, email)
    _on_read_of(seeded, email, lambda: seeded.faults.fail_next(1, 404, plain=True))
    start = len(sink.messages)
    assert run_cli(config, "sync") == 1
    assert sink.messages[start:] == []
    assert status_json(config)[1001]["last_run"]["status"] == "partial"
    seeded.faults.on_request = None
    assert run_cli(config, "sync") == 0
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        (email, None)
    ]
    assert_profiles_match(seeded, sink, [MAIN])


def test_a_read_listrak_refuses_skips_that_subscriber_and_confirms_the_others(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Listrak refuses one address's read (400): that subscriber is kept and the run is
    partial, never failed, so the others unseen are confirmed at this and every scan; two
    full scans that miss it settle it, as they do any unseen subscriber."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    seeded.subscribe(1001, "tom&jerry@example.com")
    assert run_cli(config, "sync") == 0
    seeded.faults.refuse_reads = {"tom&jerry@example.com"}
    seeded.remove(1001, "tom&jerry@example.com")
    deleted, left = sorted(seeded.truth(1001, FIELD))[:2]
    seeded.remove(1001, deleted)
    seeded.unsubscribe(1001, left)
    start = len(sink.messages)
    assert run_cli(config, "sync") == 1
    held = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert held == {deleted: None, left: None}
    last = status_json(config)[1001]
    assert last["last_run"]["status"] == "partial"
    assert "Listrak refused the read: 400 ERROR_UNSAFE_ROUTE" in json.dumps(last)
    assert "tom&jerry" not in json.dumps(last)
    assert "1 subscriber(s) not seen by this full scan" in last["last_run"]["error"]
    # The next full scan misses it too, which settles it as it does any unseen subscriber.
    later = sorted(seeded.truth(1001, FIELD))[0]
    seeded.unsubscribe(1001, later)
    start = len(sink.messages)
    assert run_cli(config, "sync") == 1  # its read was skipped once more
    held = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert held == {later: None, "tom&jerry@example.com": None}
    assert run_cli(config, "sync") == 0
    assert_profiles_match(seeded, sink, [MAIN])


def test_a_refused_read_of_someone_listrak_reports_unsubscribed_is_settled_by_the_report(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    seeded.subscribe(1001, "tom&jerry@example.com")
    assert run_cli(config, "sync") == 0
    seeded.faults.refuse_reads = {"tom&jerry@example.com"}
    seeded.unsubscribe(1001, "tom&jerry@example.com")
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        ("tom&jerry@example.com", None)
    ]
    assert_profiles_match(seeded, sink, [MAIN])


@pytest.mark.parametrize(
    "answer", [{"subscriptionState": None}, {"emailAddress": "someone.else@example.com"}]
)
def test_a_subscriber_whose_reads_say_nothing_is_settled_by_two_full_scans(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str, answer: Any
) -> None:
    """Left, dated before the last full scan so that Listrak's report of unsubscribes does
    not name it, and read alone without a state or as another address: as any unseen
    subscriber, two full scans missing it remove it, where it stayed partial forever."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    email = sorted(seeded.truth(1001, FIELD))[0]
    seeded.advance(-timedelta(days=2))
    seeded.unsubscribe(1001, email)
    seeded.faults.on_request = _answer_reads_of(seeded, email, answer)
    start = len(sink.messages)
    assert run_cli(config, "sync") == 1
    assert sink.messages[start:] == []
    assert (
        "1 subscriber(s) not seen by this full scan"
        in (status_json(config)[1001]["last_run"]["error"])
    )
    assert run_cli(config, "sync") == 1  # its read said nothing once more
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        (email, None)
    ]
    seeded.faults.on_request = None
    assert run_cli(config, "sync") == 0
    assert_profiles_match(seeded, sink, [MAIN])


def test_a_subscriber_the_scan_saw_and_the_report_names_is_removed_in_the_same_run(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Listrak's report of unsubscribes comes after the full scan: a subscriber the scan
    saw who left meanwhile is named there, which is the newer fact, not a duplicate."""
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN])
    assert run_cli(config, "sync") == 0
    silent, left = sorted(seeded.truth(1001, FIELD))[:2]
    seeded.unsubscribe(1001, silent)
    seeded.override(1001, silent, {"subscriptionState": None})  # its read says nothing
    _on_read_of(seeded, silent, lambda: seeded.unsubscribe(1001, left))
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    seeded.faults.on_request = None
    held = {m["anonymousId"].lower(): m["traits"][TRAIT] for m in sink.messages[start:]}
    assert held == {silent: None, left: None}
    assert status_json(config)[1001]["rejects"] == []
    assert_profiles_match(seeded, sink, [MAIN])


def test_an_incremental_runs_unsubscribed_pass_is_newer_than_its_subscribed_pass(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """A new subscriber read by the run's first pass leaves before its second: removed in
    that run, not refused as a contact seen twice."""
    item = {**MAIN, "full_scan_every": "24h"}
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [item])
    assert run_cli(config, "sync") == 0
    seeded.advance(timedelta(minutes=5))
    seeded.subscribe(1001, "new@example.com")
    passes: list[str] = []

    def hook(path: str) -> None:
        if path.endswith("/Contact"):
            passes.append(path)
            if len(passes) == 2:
                seeded.unsubscribe(1001, "new@example.com")

    seeded.faults.on_request = hook
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    seeded.faults.on_request = None
    assert len(passes) == 2
    sent = [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]]
    assert sent[-1] == ("new@example.com", None)
    assert status_json(config)[1001]["rejects"] == []
    assert_profiles_match(seeded, sink, [item])


def test_a_run_after_a_full_scan_stopped_while_confirming_says_the_unseen_wait(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    item = {**MAIN, "full_scan_every": "1h"}
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [item])
    settings = load_settings(config)
    assert run_cli(config, "sync") == 0
    for email in sorted(seeded.truth(1001, FIELD))[:2]:
        seeded.remove(1001, email)
    with run_context(settings) as ctx:  # a stop signal arrives with the first read
        seeded.faults.on_request = lambda path: (
            ctx.stop.set() if "/contact/" in path.lower() else None
        )
        assert sync_list(ctx, settings.lists[0], full=True).status == RunStatus.STOPPED
    seeded.faults.on_request = None
    with run_context(settings) as ctx:
        result = sync_list(ctx, settings.lists[0])
    assert not result.full_scan and result.status == RunStatus.PARTIAL
    assert result.unconfirmed == 2


def _hide_from_subscribed_scans(
    sim: ListrakSimulator, monkeypatch: pytest.MonkeyPatch, hidden: set[str]
) -> None:
    """Subscribed pages leave out these contacts, as a page shift would."""
    original = sim.page

    def page(list_id: int, query: Any) -> Any:
        data, after, served = original(list_id, query)
        if query.subscribed and hidden:
            kept = [c for c in json.loads(data) if c["emailAddress"].lower() not in hidden]
            data = json.dumps(kept).encode()
        return data, after, served

    monkeypatch.setattr(sim, "page", page)


def test_a_subscriber_listed_between_two_full_scans_that_miss_it_keeps_its_trait(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str, monkeypatch
) -> None:
    """Missed by a full scan, its read refused; listed by the run after; missed again by
    the next full scan: that is its first miss since Listrak listed it, not its second."""
    item = {**MAIN, "full_scan_every": "1h"}
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [item])
    assert run_cli(config, "sync") == 0
    email = sorted(seeded.truth(1001, FIELD))[0]
    hidden = {email}
    _hide_from_subscribed_scans(seeded, monkeypatch, hidden)
    seeded.faults.refuse_reads = {email}
    assert run_cli(config, "sync", "--full") == 1
    hidden.clear()
    seeded.advance(timedelta(minutes=5))
    seeded.set_field(1001, email, FIELD, "crm-new")
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0  # incremental: lists it, and nothing waits now
    assert [(m["anonymousId"].lower(), m["traits"][TRAIT]) for m in sink.messages[start:]] == [
        (email, True)
    ]
    hidden.add(email)
    start = len(sink.messages)
    assert run_cli(config, "sync", "--full") == 1
    assert sink.messages[start:] == []


def test_a_run_after_a_full_scan_that_failed_while_confirming_says_the_unseen_wait(
    tmp_path: Path, seeded: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """The scan completed and missed two subscribers; reading them failed the run (403):
    the run after it, between full scans, says they wait, not ok."""
    item = {**MAIN, "full_scan_every": "1h"}
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [item])
    assert run_cli(config, "sync") == 0
    for email in sorted(seeded.truth(1001, FIELD))[:2]:
        seeded.remove(1001, email)

    def refuse(path: str) -> None:
        if "/contact/" in path.lower():
            seeded.faults.fail_next(1, 403)

    seeded.faults.on_request = refuse
    assert run_cli(config, "sync", "--full") == 1
    seeded.faults.on_request = None
    assert status_json(config)[1001]["last_run"]["status"] == "failed"
    assert run_cli(config, "sync") == 1
    last = status_json(config)[1001]["last_run"]
    assert not last["full_scan"] and last["status"] == "partial"
    assert "2 subscriber(s) not seen by the last full scan" in last["error"]
