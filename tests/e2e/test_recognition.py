"""Scans of many small pages, where contacts are recognized by the digest of their bytes
(from a full scan's first page on, an incremental one's third): what a fixed hash seed, a
duplicate, a config change, a removal and a return, an upgrade, and the other commands make
of them. Recognizing is one rule on both
databases, so most cases run on SQLite; the upgrade, the sweep, the audience fields and the
dry run, with the stateful property, run the PostgreSQL statements too."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from listrak_source.listrak import client
from listrak_source.records import Page
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state.members import Members

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    member_rows,
    run_cli,
    run_full_scans,
    run_statuses,
    write_config,
)

LIST = 1201
WITH_FIELD = {"id": LIST, "user_id_field": FIELD}


def _config(
    tmp: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    *,
    page_size: int = 2,
    delivery: str = "",
    name: str = "config.toml",
    **item: object,
) -> Path:
    """Pages of `page_size` contacts, so a list of a dozen is read in six pages or more."""
    extra = f"[delivery]\n{delivery}\n" if delivery else ""
    path = write_config(tmp / name, sim, sink, db_url, [{"id": LIST, **item}], extra=extra)
    rate = "requests_per_second = 1000"
    path.write_text(path.read_text().replace(rate, f"{rate}\npage_size = {page_size}", 1))
    return path


def _quiet(config: Path, *args: str) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return run_cli(config, *args)


def _digested(db_url: str) -> dict[str, Any]:
    return {k: r["digest"] for k, r in member_rows(db_url, LIST).items() if r["digest"]}


@pytest.fixture(params=[None, "0"], ids=["None", "0"])
def hash_seed(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """The workers' PYTHONHASHSEED: unset (a random seed a process), or fixed by an operator."""
    seed: str | None = request.param
    if seed is None:
        monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    else:
        monkeypatch.setenv("PYTHONHASHSEED", seed)
    return seed


def test_recognized_subscribers_are_seen_by_the_sweep(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    hash_seed: str | None,
) -> None:
    """An operator who fixes PYTHONHASHSEED gets a seen set keyed per set (state/seen.py):
    a recognized contact must still count as seen by the sweep that follows."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=11)
    # No subscriber is confirmed one by one: the unseen are removed once two full scans
    # in a row have missed them.
    delivery = "confirm_unseen_max = 0\nmax_removal_ratio = 1.0"
    config = _config(tmp_path, sim, sink, db_url, delivery=delivery, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    assert len(_digested(db_url)) == 12
    assert _quiet(config, "sync", "--full") == 0
    gone = sorted(sim.truth(LIST, FIELD))[0]
    sim.remove(LIST, gone)
    # Missed once, it waits (the run is partial); missed twice, it is removed.
    assert [_quiet(config, "sync", "--full") for _ in range(2)] == [1, 0]
    assert gone not in {k for k, r in member_rows(db_url, LIST).items() if r["desired_subscribed"]}
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


def _twin(sim: ListrakSimulator, email: str, page_size: int) -> tuple[int, int]:
    """Serve the subscriber a second time, its bytes as they are now, wherever its twin's
    place falls; (the contact's page, the twin's page), counted from 1."""
    lst = sim.get(LIST)
    with sim.lock:
        contact = lst.contacts[email.lower()]
        body = lst.full(contact, frozenset([FIELD]))
    sim.add_raw(LIST, json.loads(body))
    with sim.lock:
        twin = lst.raws[-1]
        assert twin.raw == body  # byte for byte what the contact itself is served as
        order = list(lst._recs)
    return order.index(contact) // page_size + 1, order.index(twin) // page_size + 1


def _drop_twins(sim: ListrakSimulator) -> None:
    lst = sim.get(LIST)
    with sim.lock:
        for twin in list(lst.raws):
            lst.raws.remove(twin)
            lst.drop(twin)


def test_a_subscriber_served_twice_in_the_same_bytes_is_refused_the_second_time(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    sqlite_url: str,
    hash_seed: str | None,
) -> None:
    """Its second serving is recognized by its digest, but the scan saw its key before:
    the diff refuses it, as when every contact is decoded, and the run is not `ok`."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=12)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    # A contact read on one page whose twin falls on a later one, where it is recognized.
    for email in sorted(sim.truth(LIST, FIELD)):
        first, second = _twin(sim, email, 2)
        if first < second:
            break
        _drop_twins(sim)
    else:
        pytest.fail("no contact's twin falls after it")
    start = len(sink.messages)
    assert _quiet(config, "sync", "--full") != 0
    assert run_statuses(sqlite_url, LIST)[-1] == "partial"
    assert sink.messages[start:] == []
    _drop_twins(sim)
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])


def _downgrade_to_0009(db_url: str) -> None:
    """The schema as the worker before digests left it: its rows then carry none."""
    from alembic import command

    from listrak_source.state.engine import make_engine, migrations_dir
    from listrak_source.state.migrate import _config as alembic_config

    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            config = alembic_config(migrations_dir())
            config.attributes["connection"] = conn
            command.downgrade(config, "0009_audience_guard")
    finally:
        engine.dispose()


def _columns(db_url: str) -> set[str]:
    from sqlalchemy import inspect

    from listrak_source.state.engine import make_engine

    engine = make_engine(db_url)
    try:
        return {column["name"] for column in inspect(engine).get_columns("members")}
    finally:
        engine.dispose()


def test_a_database_from_before_digests_stamps_its_rows_then_recognizes_them(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 12, field_id=FIELD, field_ratio=0.5, seed=13)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    _downgrade_to_0009(db_url)
    assert "digest" not in _columns(db_url)
    # The first re-sync decodes every contact, sends nothing, and stamps every row.
    start = len(sink.messages)
    assert _quiet(config, "sync", "--full") == 0
    assert sink.messages[start:] == []
    assert len(_digested(db_url)) == 12
    stamped = _digested(db_url)
    # The second recognizes them; changes made since are still read.
    sim.set_field(LIST, emails[0], FIELD, "changed-0")
    sim.unsubscribe(LIST, emails[5])
    sim.remove(LIST, emails[9])
    sim.subscribe(LIST, "late@example.com", {FIELD: "late"})
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    now = _digested(db_url)
    assert {k for k in stamped if now.get(k) != stamped[k]} == {
        emails[0].lower(),
        emails[5].lower(),
        emails[9].lower(),
    }
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


@pytest.mark.parametrize("middle", [None, FIELD + 1])
def test_the_same_bytes_under_another_user_id_field_are_decoded_again(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str, middle: int | None
) -> None:
    """Contacts without a value for the field are served in the same bytes whichever field
    the config names, or none: what they mean is not the same."""
    other = FIELD + 1
    sim.add_list(LIST, "Main", field_ids=[FIELD, other])
    emails = sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=14)
    named = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(named, "sync") == 0
    assert _quiet(named, "sync", "--full") == 0
    # Every userId is cleared in Listrak while the config names another field, or none.
    item = {} if middle is None else {"user_id_field": middle}
    elsewhere = _config(tmp_path, sim, sink, sqlite_url, name="elsewhere.toml", **item)
    for email in emails:
        sim.set_field(LIST, email, FIELD, None)
    assert _quiet(elsewhere, "sync", "--full") == 0
    assert _quiet(elsewhere, "sync", "--full") == 0
    # Their rows now carry the digests of those bytes, read under the other setting.
    assert len(_digested(sqlite_url)) == len(emails)
    # Named again: the contacts' bytes are those of the runs before, their userIds gone.
    assert _quiet(named, "sync", "--full") == 0
    rows = member_rows(sqlite_url, LIST)
    assert {k: r["desired_user_id"] for k, r in rows.items()} == dict.fromkeys(rows)
    assert_profiles_match(sim, sink, [WITH_FIELD])


@pytest.mark.parametrize("leaving", ["removed", "unsubscribed"])
def test_a_subscriber_that_left_comes_back_in_the_same_bytes(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str, leaving: str
) -> None:
    """Removed from the list (and swept), or unsubscribed; then back exactly as it was
    served when its row was stamped."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=15)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    assert _quiet(config, "sync", "--full") == 0
    lst = sim.get(LIST)
    # Every contact in turn, so that some are read on the pages whose contacts are
    # recognized: each leaves, is swept, and comes back as it was.
    for key in sorted(sim.truth(LIST, FIELD))[::3]:
        with sim.lock:
            contact = lst.contacts[key]
            state = contact.state
        if leaving == "removed":
            sim.remove(LIST, key)
        else:
            sim.unsubscribe(LIST, key)
        assert _quiet(config, "sync", "--full") == 0
        assert not member_rows(sqlite_url, LIST)[key]["desired_subscribed"]
        assert_profiles_match(sim, sink, [WITH_FIELD])
        with sim.lock:
            if leaving == "removed":
                lst.contacts[key] = contact
                lst.insert(contact)
            else:
                contact.set_state(state)
        assert _quiet(config, "sync", "--full") == 0
        assert member_rows(sqlite_url, LIST)[key]["desired_subscribed"]
        assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


def test_a_subscriber_also_served_unsubscribed_in_the_scan_ends_as_decoding_leaves_it(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    sqlite_url: str,
    hash_seed: str | None,
) -> None:
    """An unsubscribed copy anywhere in the scan, before or after the subscribed one: the
    subscribed one is recognized only if the copy has not unsubscribed its row yet."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=16)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    lst = sim.get(LIST)
    for key in sorted(sim.truth(LIST, FIELD))[::2]:
        with sim.lock:
            email = lst.contacts[key].email
        sim.add_raw(LIST, {"emailAddress": email, "subscriptionState": "Unsubscribed"})
        with sim.lock:
            order = list(lst._recs)
            ahead = order.index(lst.raws[-1]) < order.index(lst.contacts[key])
        # The scan's outcome, whichever copy it reads first: the later one is refused, or
        # re-subscribes the row the earlier one unsubscribed.
        assert _quiet(config, "sync", "--full") != 0 or ahead
        assert member_rows(sqlite_url, LIST)[key]["desired_subscribed"] is True or not ahead
        _drop_twins(sim)
        assert _quiet(config, "sync", "--full") == 0
        assert_profiles_match(sim, sink, [WITH_FIELD])


def _dry_run(config: Path) -> list[dict[str, Any]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        run_cli(config, "sync", "--full", "--dry-run")
    return [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]


def _identifies(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(
        (m["anonymousId"], m.get("userId"), json.dumps(m["traits"], sort_keys=True))
        for m in messages
    )


def test_a_dry_run_over_recognized_contacts_prints_what_the_sync_after_it_sends(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 16, field_id=FIELD, field_ratio=1.0, seed=17)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    stamped = _digested(db_url)
    for email in emails[::4]:
        sim.set_field(LIST, email, FIELD, f"x-{email}")
    sim.unsubscribe(LIST, emails[1])
    sim.subscribe(LIST, "New.One@Example.com", {FIELD: "n1"})
    printed = _dry_run(config)
    assert _digested(db_url) == stamped  # a dry run keeps nothing, digests neither
    start = len(sink.messages)
    assert _quiet(config, "sync", "--full") == 0
    assert printed and _identifies(printed) == _identifies(sink.messages[start:])
    assert _dry_run(config) == []
    assert_profiles_match(sim, sink, [WITH_FIELD])


@pytest.mark.parametrize("command", ["backfill", "baseline", "rename"])
def test_the_other_commands_over_recognized_contacts(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str, command: str
) -> None:
    """Backfill re-sends every subscriber, a baseline adopts them, a rename moves them to
    the new trait, whether their contacts were decoded or recognized; and a change made
    before them is read."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=18)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    assert _quiet(config, "sync", "--full") == 0
    sim.set_field(LIST, emails[-1], FIELD, "changed")
    sim.unsubscribe(LIST, emails[-2])
    start = len(sink.messages)
    if command == "rename":
        renamed = _config(
            tmp_path,
            sim,
            sink,
            sqlite_url,
            name="renamed.toml",
            user_id_field=FIELD,
            trait="Renamed",
        )
        assert _quiet(renamed, "rename-trait", "--list", str(LIST), "--confirm") == 0
        assert _quiet(renamed, "sync", "--full") == 0
        profiles = {
            str(m["anonymousId"]).lower() for m in sink.messages[start:] if "Renamed" in m["traits"]
        }
        assert profiles == set(sim.truth(LIST, FIELD)) | {emails[-2].lower()}
        return
    assert _quiet(config, command, *(["--confirm"] if command == "backfill" else [])) == 0
    sent = {str(m["anonymousId"]).lower() for m in sink.messages[start:]}
    if command == "backfill":
        assert sent == set(sim.truth(LIST, FIELD)) | {emails[-2].lower()}
    else:
        # The baseline's scan reads the two changes; they go out, the rest is adopted.
        assert sent == {emails[-1].lower(), emails[-2].lower()}
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


def test_a_scan_cut_short_after_some_rows_were_stamped(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str
) -> None:
    """A failed scan keeps the digests of the pages it stored, and sweeps nothing; the
    next one recognizes them and reads the rest."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 16, field_id=FIELD, field_ratio=1.0, seed=19)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    for email in emails:
        sim.set_field(LIST, email, FIELD, f"v2-{email}")
    before = _digested(sqlite_url)
    sim.faults.die_after_page = 5
    assert _quiet(config, "sync", "--full") != 0
    sim.faults.die_after_page = None
    after = _digested(sqlite_url)
    assert 0 < sum(after[k] != before[k] for k in before) < len(before)
    # Listrak goes back to what it held first: the rows read so far hold the new values.
    for email in emails:
        sim.set_field(LIST, email, FIELD, email.lower())
    sim.remove(LIST, emails[3])
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert_no_change_under_two_ids(sink.messages)


def test_hostile_contacts_among_recognized_ones(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str
) -> None:
    """The split's marker nested in a contact's values, escapes and non-ASCII, a contact
    that opens with another key: their pages are decoded, whole or contact by contact,
    and their changes read, while the others are recognized."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=20)
    nested = [{"k": 1}, {"emailAddress": "ghost@example.com", "subscriptionState": "Subscribed"}]
    sim.override(LIST, emails[0], {"externalContactID": nested})
    sim.override(LIST, emails[1], {"subscribeMethod": 'q"uo\\te \u00e9\u2028 \U0001d11e'})
    sim.override(LIST, emails[2], {"externalContactID": "\ud800"})
    sim.override(LIST, emails[3], {"externalContactID": '},{"emailAddress":"x@example.com"'})
    sim.add_raw(
        LIST,
        {
            "subscriptionState": "Subscribed",
            "emailAddress": "Raw.First@Example.com",
            "segmentationFieldValues": [{"segmentationFieldId": FIELD, "value": "raw-1"}],
        },
    )
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)

    def truth() -> dict[str, Any]:
        want = {k: v["user_id"] for k, v in sim.truth(LIST, FIELD).items()}
        return {**want, "raw.first@example.com": "raw-1"}

    def check() -> None:
        from listrak_source.simulator import rebuild_profiles

        trait = f"Listrak_list_{LIST}"
        profiles = rebuild_profiles(sink.messages)
        have = {k: p["user_id"] for k, p in profiles.items() if p["traits"].get(trait) is True}
        assert have == truth()

    for _ in range(3):
        assert _quiet(config, "sync", "--full") == 0
        check()
    for n, email in enumerate(emails[:4]):
        sim.set_field(LIST, email, FIELD, f"edited-{n}")
    assert _quiet(config, "sync", "--full") == 0
    check()
    assert _quiet(config, "sync", "--full") == 0
    check()
    assert "ghost@example.com" not in member_rows(sqlite_url, LIST)
    assert_no_change_under_two_ids(sink.messages)


def test_audience_fields_switched_on_and_off_between_runs(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """With audience fields every contact is decoded; the rows it changes lose their
    digest, so contacts served again in bytes from before are decoded too."""
    vip = FIELD + 7
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.add_field(LIST, vip, "CheckBox")
    emails = sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=21)
    plain = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    audiences = f'[[audiences]]\nkey = "vip"\nlist_id = {LIST}\nfield_id = {vip}\n'
    with_audience = _config(tmp_path, sim, sink, db_url, name="aud.toml", user_id_field=FIELD)
    with_audience.write_text(
        with_audience.read_text().replace("[database]", audiences + "[database]")
    )
    assert _quiet(plain, "sync") == 0
    assert _quiet(plain, "sync", "--full") == 0
    original = {e: sim.truth(LIST, FIELD)[e.lower()]["user_id"] for e in emails}
    for email in emails[::2]:
        sim.set_field(LIST, email, FIELD, f"during-{email}")
    assert _quiet(with_audience, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    assert _quiet(with_audience, "sync", "--full") == 0
    # Back to the values, so the bytes, the rows' digests were stamped from.
    for email in emails[::2]:
        sim.set_field(LIST, email, FIELD, str(original[email]))
    assert _quiet(plain, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    rows = member_rows(db_url, LIST)
    assert {k: r["desired_user_id"] for k, r in rows.items()} == {
        e.lower(): original[e] for e in emails
    }
    assert_no_change_under_two_ids(sink.messages)


def test_incremental_runs_over_recognized_contacts(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str
) -> None:
    """Every contact is in an incremental run's window (all subscribed within its overlap):
    those served as stamped are recognized; an edit, an unsubscribe, a re-subscribe and a
    new contact are read."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=22)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD, full_scan_every="24h")
    assert _quiet(config, "sync") == 0
    assert _quiet(config, "sync") == 0
    steps = [
        lambda: sim.set_field(LIST, emails[7], FIELD, "edited"),
        lambda: sim.unsubscribe(LIST, emails[8]),
        lambda: sim.subscribe(LIST, emails[8]),
        lambda: sim.subscribe(LIST, "new@example.com", {FIELD: "new"}),
        lambda: sim.set_field(LIST, emails[7], FIELD, emails[7].lower()),
    ]
    for step in steps:
        step()
        assert _quiet(config, "sync") == 0
        assert_profiles_match(sim, sink, [WITH_FIELD])
    assert run_full_scans(sqlite_url, LIST) == [True] + [False] * 6
    assert_no_change_under_two_ids(sink.messages)


def _mark(db_url: str) -> Any:
    from sqlalchemy import create_engine, select

    from listrak_source.state.schema import list_state

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = select(list_state.c.high_water_mark).where(list_state.c.list_id == LIST)
            mark = conn.execute(query).scalar_one()
            return None if mark is None else mark.replace(tzinfo=None)
    finally:
        engine.dispose()


def test_a_dropped_mark_is_set_again_by_the_next_full_scan_though_its_contacts_are_known(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """A mark in the future is dropped, and the next scan is full: its first pages are
    decoded rather than recognized, so their dates set the mark, and polling resumes."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 6, field_id=FIELD, field_ratio=1.0, seed=3)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD, full_scan_every="24h")
    assert _quiet(config, "sync") == 0
    # As a clock set back past the newest contact's date leaves it.
    _set_mark(db_url, datetime(2099, 1, 1, tzinfo=UTC))
    for _ in range(3):
        assert _quiet(config, "sync") == 0
    assert run_full_scans(db_url, LIST) == [True, True, False, False]
    assert _mark(db_url) is not None
    assert_profiles_match(sim, sink, [WITH_FIELD])


def test_a_pass_learning_the_mark_decodes_pages_until_one_gives_a_usable_date(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str
) -> None:
    """The first two pages' contacts all carry dates yet to come, which set no mark: the
    pass decodes the third page too, rather than recognizing it, and its dates set one. On
    SQLite only: the rule is the scan's, not the database's."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 6, field_id=FIELD, field_ratio=1.0, seed=5)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD, full_scan_every="24h")
    assert _quiet(config, "sync") == 0
    lst = sim.get(LIST)
    with sim.lock:
        first_pages = [c.email for c in list(lst._recs)[:4]]
    for email in first_pages:
        sim.override(LIST, email, {"subscribeDate": "2099-01-01T00:00:00"})
    _set_mark(sqlite_url, datetime(2099, 1, 1, tzinfo=UTC))
    assert _quiet(config, "sync") == 0
    assert _mark(sqlite_url) is not None
    assert _quiet(config, "sync") == 0
    assert run_full_scans(sqlite_url, LIST) == [True, True, False]


def _set_mark(db_url: str, mark: datetime) -> None:
    from sqlalchemy import create_engine, update

    from listrak_source.state.schema import list_state

    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(update(list_state).values(high_water_mark=mark))
    finally:
        engine.dispose()


@pytest.mark.parametrize("recognizing", [True])
def test_the_high_water_mark_after_a_scan_is_never_ahead_of_what_decoding_every_contact_gives(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    recognizing: bool,
) -> None:
    """A contact stored by a scan that failed later, so its dates moved no mark, then
    recognized by the next, complete, scan (or decoded, as every contact was before). A
    recognized contact's dates are not read: the mark may lag behind them, which only
    widens the next incremental windows, and is never ahead. On SQLite only: the mark is
    one rule on both databases."""
    import time

    from listrak_source.state.members import Members

    if not recognizing:
        monkeypatch.setattr(Members, "recognize", lambda self, *a, **k: [0] * len(a[2]))
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 12, field_id=FIELD, field_ratio=1.0, seed=23)
    config = _config(tmp_path, sim, sink, sqlite_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    first = _mark(sqlite_url)
    time.sleep(1.1)  # Listrak's dates are to the second
    lst = sim.get(LIST)
    for n in itertools.count():
        email = f"late{n}@example.com"
        sim.subscribe(LIST, email, {FIELD: "late"})
        with sim.lock:
            place = list(lst._recs).index(lst.contacts[email])
        if 4 <= place < 8:  # its page is the third or the fourth
            break
        sim.remove(LIST, email)
    with sim.lock:
        when = datetime.fromisoformat(str(lst.contacts[email].state.subscribe_date))
    assert when > first
    sim.faults.die_after_page = 5  # after its page is stored, before the scan completes
    assert _quiet(config, "sync", "--full") != 0
    sim.faults.die_after_page = None
    assert _quiet(config, "sync", "--full") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
    if recognizing:
        assert first <= _mark(sqlite_url) <= when
    else:
        assert _mark(sqlite_url) == when


@pytest.mark.parametrize("splitting", [False, True])
def test_the_last_contact_of_a_page_with_the_marker_nested_in_a_list_of_objects(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    splitting: bool,
) -> None:
    """A page of one contact (or any page's last one) whose values hold a list of objects,
    the last of which opens with `emailAddress`: a valid page, read as every other (as it
    is when no page is split)."""
    if not splitting:
        monkeypatch.setattr("listrak_source.listrak.client.split_page", lambda content: None)
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    emails = sim.seed(LIST, 4, field_id=FIELD, field_ratio=1.0, seed=24)
    nested = [{"k": 1}, {"emailAddress": "ghost@example.com"}]
    sim.override(LIST, emails[0], {"externalContactID": nested})
    config = _config(tmp_path, sim, sink, sqlite_url, page_size=1, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])


def _synced_with_a_slow_read(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A list of two pages synced once; from now on each read of its rows takes half a
    second more."""
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 4, field_id=FIELD, field_ratio=1.0, seed=13)
    config = _config(tmp_path, sim, sink, db_url, user_id_field=FIELD)
    assert _quiet(config, "sync") == 0
    read = Members._read_current

    def slow(self: Members, *args: Any, **kwargs: Any) -> Any:
        time.sleep(0.5)
        return read(self, *args, **kwargs)

    monkeypatch.setattr(Members, "_read_current", slow)
    return config


def _decoded_contacts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys of the contacts the worker decodes from now on, in order."""
    decoded: list[str] = []
    parse = client.parse_page

    def recorded(*args: Any, **kwargs: Any) -> Page:
        page = parse(*args, **kwargs)
        decoded.extend(c.key for c in page.contacts)
        return page

    monkeypatch.setattr(client, "parse_page", recorded)
    return decoded


def test_a_pass_waits_at_its_first_page_for_the_rows_it_began_reading_however_slow(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A re-sync recognizes its contacts from its first page on: it takes the list's rows
    it began reading beside that page's request, and no read is left behind."""
    config = _synced_with_a_slow_read(tmp_path, sim, sink, db_url, monkeypatch)
    decoded = _decoded_contacts(monkeypatch)
    assert _quiet(config, "sync") == 0
    assert decoded == []
    assert [t.name for t in threading.enumerate() if t.name.startswith("rows-")] == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert_profiles_match(sim, sink, [WITH_FIELD])


def test_a_pass_that_fails_before_its_first_page_leaves_no_read_behind(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read begun beside the first request is stopped, however slow, and is over
    before the run closes its connections."""
    config = _synced_with_a_slow_read(tmp_path, sim, sink, db_url, monkeypatch)

    def refuse_first_page(path: str) -> None:
        if "/Contact" in path:
            sim.faults.on_request = None
            sim.faults.fail_next(1, 400)

    sim.faults.on_request = refuse_first_page
    assert _quiet(config, "sync") == 1
    assert [t.name for t in threading.enumerate() if t.name.startswith("rows-")] == []
    assert _quiet(config, "sync") == 0
    assert_profiles_match(sim, sink, [WITH_FIELD])
