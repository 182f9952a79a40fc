"""`push`, `status` and `explain` through the real CLI, against the simulator."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listrak_source.config import load_settings
from listrak_source.engage.ingest import collect
from listrak_source.engage.settings import build_mappings
from listrak_source.privacy import contact_ref
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import Database, make_engine

from ..audiences.world import LIST, VIP, event, prepare_list
from .harness import on_a_terminal, run_cli, status_json, write_config

AUDIENCES = f"""
[[audiences]]
key = "vip"
list_id = {LIST}
field_id = {VIP}
"""


@pytest.fixture
def config(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, emails: list[str]
) -> Path:
    path = write_config(
        tmp_path / "config.toml", sim, sink, db_url, [{"id": LIST}], extra=AUDIENCES
    )
    assert run_cli(path, "sync") == 0
    return path


def send(config: Path, *events: dict[str, object]) -> None:
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    ingest = collect(list(events), build_mappings(settings.audiences))
    Database(engine).audiences.commit(ingest, datetime.now(UTC))
    engine.dispose()


@pytest.fixture
def emails(sim: ListrakSimulator) -> list[str]:
    return prepare_list(sim, subscribers=5)


def test_push_dry_run_prints_the_exact_bodies_and_changes_nothing(
    config: Path, sim: ListrakSimulator, emails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    send(config, event(emails[0], True), event(emails[1], False))
    capsys.readouterr()
    assert run_cli(config, "push", "--dry-run") == 0
    captured = capsys.readouterr()
    assert f"list {LIST}: ok - would push 2 value(s)" in captured.err, "nothing was pushed"
    out = captured.out.splitlines()
    assert out[0] == f"POST /List/{LIST}/Contact/SegmentationField"
    assert json.loads(out[1]) == [
        {
            "emailAddress": emails[0],
            "segmentationFieldValues": [{"segmentationFieldId": VIP, "value": "on"}],
        },
        {
            "emailAddress": emails[1],
            "segmentationFieldValues": [{"segmentationFieldId": VIP, "value": "off"}],
        },
    ]
    assert sim.bulk_requests == []
    assert run_cli(config, "push", "--dry-run") == 0
    assert capsys.readouterr().out.splitlines()[1] == out[1], "nothing was kept"
    assert run_cli(config, "push") == 0
    assert [r.body for r in sim.bulk_requests] == [json.loads(out[1])]


def test_push_exit_statuses(
    config: Path, sim: ListrakSimulator, emails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    send(config, event(emails[0], True))
    sim.faults.refuse_beta = True
    assert run_cli(config, "push") == 2
    err = capsys.readouterr()
    assert "Beta route" in err.out
    sim.faults.reset()
    sim.faults.fail_bulk_next(100, 503)
    assert run_cli(config, "push") == 1
    sim.faults.reset()
    assert run_cli(config, "push") == 0
    assert run_cli(config, "push", "--list", "999") == 2


def test_status_and_explain_cover_audiences(
    config: Path, sim: ListrakSimulator, emails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    send(config, event(emails[0], True), event(emails[0], True), event("held@example.com", True))
    assert run_cli(config, "push") == 0
    capsys.readouterr()
    assert run_cli(config, "status", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    section = document["audiences"]
    (vip,) = section["audiences"]
    assert (vip["key"], vip["members"], vip["held"], vip["unverified"]) == ("vip", 2, 1, 1)
    assert section["totals"]["received"] == 3 and section["totals"]["duplicates"] == 0
    assert section["pushes"][0]["last_push"]["status"] == "ok"
    assert run_cli(config, "status") == 0
    text = capsys.readouterr().out
    assert "AUDIENCE" in text and "audience events: received 3" in text
    assert "@" not in text, "status never prints an email"
    assert run_cli(config, "explain", emails[0].upper()) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0] == f"contact {contact_ref(emails[0])}"
    assert "entered" in text and "sent     checked" in text
    assert "@" not in text, "the contact is named by its reference, as lookup names it"
    assert run_cli(config, "explain", "held@example.com") == 0
    assert f"held until the contact subscribes to list {LIST}" in capsys.readouterr().out
    assert run_cli(config, "explain", "nobody@example.com") == 1
    assert status_json(config)[LIST]["subscribed"] == 5


def test_a_push_whose_process_died_is_not_shown_running(
    config: Path, emails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    # What a push killed with kill -9 leaves: its record running, its lock gone with it.
    Database(engine).audiences.start_push(LIST, datetime.now(UTC))
    capsys.readouterr()
    assert run_cli(config, "status", "--json") == 1, "a push that failed wants attention"
    (push,) = json.loads(capsys.readouterr().out)["audiences"]["pushes"]
    assert push["last_push"]["status"] == "failed"
    assert "stopped before the push finished" in push["last_push"]["error"]
    assert run_cli(config, "status") == 1
    shown = capsys.readouterr().out
    assert "failed" in shown and "running" not in shown
    send(config, event(emails[0], True))
    assert run_cli(config, "push") == 0
    with engine.connect() as conn:
        statuses = conn.exec_driver_sql("SELECT status FROM audience_pushes ORDER BY id").all()
    engine.dispose()
    assert [s for (s,) in statuses] == ["failed", "ok"], "the next push closed it"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_push_shows_its_progress_on_a_terminal(config: Path, emails: list[str]) -> None:
    send(config, *[event(e, True) for e in emails])
    shown = on_a_terminal(config, {"TERM": "xterm"}, "push")
    assert f"push list {LIST}: pushed 5" in shown, repr(shown)


def test_push_while_another_process_pushes_the_list_is_skipped(
    config: Path, emails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from listrak_source.state.locks import PUSH_LOCK

    send(config, event(emails[0], True))
    engine = make_engine(load_settings(config).database.url)
    capsys.readouterr()
    with Database(engine).locks.hold(LIST, "host:1:daemon", PUSH_LOCK):
        assert run_cli(config, "push") == 1
    engine.dispose()
    out = capsys.readouterr().out
    assert f"list {LIST} is being pushed by host:1:daemon; skipped" in out
    assert run_cli(config, "push") == 0


def test_a_refused_listrak_secret_is_one_line_and_exit_2(
    config: Path, sim: ListrakSimulator, emails: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    send(config, *[event(e, True) for e in emails])
    sim.client_secret = "rotated-in-listrak"
    capsys.readouterr()
    assert run_cli(config, "push") == 2
    captured = capsys.readouterr()
    refusals = [line for line in captured.out.splitlines() if "refused the client id" in line]
    assert len(refusals) == 1, captured.out
    assert captured.err.count("refused the client id") <= 1, "logged once, not per contact"
    assert len([r for r in sim.bulk_requests if r.status != 201]) <= 1
