"""End to end over loopback: simulator, sink, the real Segment client, SQLite and Postgres."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import FIELD, assert_profiles_match, run_cli, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}


@pytest.fixture
def page_size() -> int:
    return 5000


@pytest.fixture
def config(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, page_size: int
) -> Path:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 300, field_id=FIELD, seed=1)
    sim.add_list(1002, "Other")
    sim.seed(1002, 120, seed=2)
    path = write_config(tmp_path / "config.toml", sim, sink, db_url, [MAIN, OTHER])
    rate = "requests_per_second = 1000"
    path.write_text(path.read_text().replace(rate, f"{rate}\npage_size = {page_size}", 1))
    return path


def by_trait(sink: SegmentSink, start: int, trait: str) -> dict[str, dict]:
    return {m["anonymousId"].lower(): m for m in sink.messages[start:] if trait in m["traits"]}


def test_first_sync_sends_every_subscriber_once(config: Path, sim, sink) -> None:
    assert run_cli(config, "sync") == 0
    assert len(sink.messages) == 420
    assert len({m["messageId"] for m in sink.messages}) == 420
    assert_profiles_match(sim, sink, [MAIN, OTHER])
    with_user = [m for m in sink.messages if m.get("userId")]
    assert with_user and all(m["traits"]["Listrak_list_1001"] is True for m in with_user)
    message = sink.messages[0]
    assert message["type"] == "identify"
    assert message["anonymousId"] == message["traits"]["email"]
    assert message["timestamp"].endswith("+00:00")


@pytest.mark.parametrize("page_size", [7])
def test_pages_of_few_changes_are_posted_together(config: Path, sim, sink) -> None:
    """61 pages of 7 contacts reach Segment in a few batches, not a request a page: the
    courier gathers pages smaller than a batch for up to a second, and posts what it holds
    as soon as the read ends. Fewer than half as many requests as pages leaves room for a
    machine so loaded that two pages take a second."""
    assert run_cli(config, "sync") == 0
    assert len(sink.messages) == 420
    assert sink.stats.requests < 61 / 2
    assert_profiles_match(sim, sink, [MAIN, OTHER])


@pytest.mark.parametrize("page_size", [50])
def test_segments_answers_are_written_beside_the_scan_only_on_postgres(
    config: Path, sink: SegmentSink, db_url: str
) -> None:
    """PostgreSQL takes the sent marks from a thread of their own while the scan goes
    on; SQLite, one writer at a time, from the scan's thread between pages. Either way every
    row ends sent, and the run is ok."""
    threads: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "sent_subscribed=members.desired_subscribed" in statement:
            threads.append(threading.current_thread().name)

    event.listen(Engine, "before_cursor_execute", note)
    try:
        assert run_cli(config, "sync") == 0
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    assert len(sink.messages) == 420
    beside = {name.startswith("answers-") for name in threads}
    assert beside == {db_url.startswith("postgresql")}


def test_a_first_sync_vacuums_the_table_once_delivered_on_postgres_and_a_re_sync_not(
    config: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Its sent marks left a dead version of every row it stored; a re-sync stores few."""
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if (
            statement.startswith("VACUUM")
            or "sent_subscribed=members.desired_subscribed" in statement
        ):
            statements.append(statement.split(maxsplit=1)[0])

    event.listen(Engine, "before_cursor_execute", note)
    try:
        assert run_cli(config, "sync") == 0
        first = statements[:]
        statements.clear()
        sim.unsubscribe(1001, sorted(sim.truth(1001, FIELD))[0])
        assert run_cli(config, "sync") == 0
    finally:
        event.remove(Engine, "before_cursor_execute", note)
    on_postgres = db_url.startswith("postgresql")
    # One a list, each after its list's sent marks.
    assert first.count("VACUUM") == (2 if on_postgres else 0)
    assert first[-1] == ("VACUUM" if on_postgres else "UPDATE")
    assert "VACUUM" not in statements and "UPDATE" in statements
    assert_profiles_match(sim, sink, [MAIN, OTHER])


# Pages of 7 make a scan of dozens of pages: from the third on, unchanged contacts are
# found by their marks and not read, and every change must still be found.
@pytest.mark.parametrize("page_size", [5000, 7])
def test_second_sync_without_change_sends_nothing(config: Path, sink) -> None:
    assert run_cli(config, "sync") == 0
    before = len(sink.messages)
    assert run_cli(config, "sync") == 0
    assert len(sink.messages) == before


@pytest.mark.parametrize("page_size", [5000, 7])
def test_every_kind_of_change(config: Path, sim, sink) -> None:
    assert run_cli(config, "sync") == 0
    truth = sim.truth(1001, FIELD)
    keys = sorted(truth)
    with_uid = [k for k in keys if truth[k]["user_id"]]
    sim.unsubscribe(1001, truth[keys[0]]["email"])
    sim.remove(1001, truth[keys[1]]["email"])
    sim.set_field(1001, truth[with_uid[-1]]["email"], FIELD, "crm-changed")
    sim.subscribe(1001, "Fresh.Person@Example.com", {FIELD: "crm-fresh"})
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    sent = by_trait(sink, start, "Listrak_list_1001")
    assert set(sent) == {keys[0], keys[1], with_uid[-1], "fresh.person@example.com"}
    assert sent[keys[0]]["traits"]["Listrak_list_1001"] is None
    assert sent[keys[1]]["traits"]["Listrak_list_1001"] is None
    assert sent[with_uid[-1]]["userId"] == "crm-changed"
    assert sent["fresh.person@example.com"]["anonymousId"] == "Fresh.Person@Example.com"
    assert sent["fresh.person@example.com"]["userId"] == "crm-fresh"
    assert by_trait(sink, start, "Listrak_list_1002") == {}
    # Re-subscribe the one who left: the trait comes back.
    sim.subscribe(1001, truth[keys[0]]["email"])
    start = len(sink.messages)
    assert run_cli(config, "sync") == 0
    again = by_trait(sink, start, "Listrak_list_1001")
    assert list(again) == [keys[0]] and again[keys[0]]["traits"]["Listrak_list_1001"] is True
    assert_profiles_match(sim, sink, [MAIN, OTHER])


def test_single_list_option_and_unknown_list(config: Path, sink, capsys) -> None:
    assert run_cli(config, "sync", "--list", "1002") == 0
    assert {m["traits"].get("Listrak_list_1002") for m in sink.messages} == {True}
    assert run_cli(config, "sync", "--list", "999") == 2
    assert "list 999 is not in the configuration" in capsys.readouterr().err


def test_dry_run_prints_and_changes_nothing(config: Path, sim, sink, capsys) -> None:
    assert run_cli(config, "sync", "--dry-run") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == 420 and sink.messages == []
    assert {line["type"] for line in lines} == {"identify"}
    assert sim.client_secret not in json.dumps(lines)
    # Nothing was kept: the real sync sends everything, under its own message ids.
    assert run_cli(config, "sync") == 0
    assert len(sink.messages) == 420


def test_status_json_after_sync(config: Path, capsys) -> None:
    assert run_cli(config, "sync") == 0
    capsys.readouterr()
    assert run_cli(config, "status", "--json") == 0
    status = json.loads(capsys.readouterr().out)
    first = status["lists"][0]
    assert first["list_id"] == 1001 and first["pending"] == 0 and first["dead"] == 0
    assert first["last_run"]["status"] == "ok" and first["last_run"]["delivered"] == 300
