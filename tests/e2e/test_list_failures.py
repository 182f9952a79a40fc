"""One list's failure is that list's: recorded as one line without SQL or personal data,
while the other lists still run, in sync, backfill and the daemon."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from listrak_source.cli.wiring import build_daemon
from listrak_source.config import load_settings
from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import make_engine

from .harness import FIELD, run_cli, status_json, write_config

MAIN = {"id": 1001, "user_id_field": FIELD}
OTHER = {"id": 1002}
REFUSAL = "refused by a test trigger"


@pytest.fixture
def seeded(sim: ListrakSimulator) -> ListrakSimulator:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 20, field_id=FIELD, seed=9)
    sim.add_list(1002, "Other")
    sim.seed(1002, 5, seed=10)
    return sim


def refuse_list_1001(db_url: str) -> None:
    """A trigger makes every insert of list 1001 fail, with its emails in the statement."""
    engine = create_engine(db_url)
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_list BEFORE INSERT ON members WHEN NEW.list_id = 1001"
                    f" BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION refuse_list() RETURNS trigger AS $$ BEGIN"
                    f" IF NEW.list_id = 1001 THEN RAISE EXCEPTION '{REFUSAL}'; END IF;"
                    " RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_list BEFORE INSERT ON members"
                    " FOR EACH ROW EXECUTE FUNCTION refuse_list()"
                )
            )
    engine.dispose()


def assert_clean(text_out: str) -> None:
    assert "@example.com" not in text_out
    assert "INSERT" not in text_out and "parameters" not in text_out
    assert "Traceback" not in text_out


@pytest.mark.parametrize("command", [["sync"], ["backfill", "--confirm"]], ids=["sync", "backfill"])
def test_a_database_error_fails_one_list_in_one_clean_line(
    tmp_path: Path,
    seeded: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN, OTHER])
    assert run_cli(config, "migrate") == 0
    refuse_list_1001(db_url)
    capsys.readouterr()
    assert run_cli(config, *command) == 1
    captured = capsys.readouterr()
    assert "list 1001: failed" in captured.out and "list 1002: ok" in captured.out
    assert REFUSAL in captured.out
    assert_clean(captured.out + captured.err)
    error = status_json(config)[1001]["last_run"]["error"]
    assert REFUSAL in error and "\n" not in error
    assert run_cli(config, "status", "--json") == 1  # one failed run: degraded
    assert run_cli(config, "status") == 1
    assert_clean(capsys.readouterr().out)
    assert {m["traits"].get("Listrak_list_1002") for m in sink.messages} == {True}


def test_the_daemon_logs_a_failed_run_in_one_clean_line(
    tmp_path: Path,
    seeded: ListrakSimulator,
    sink: SegmentSink,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = write_config(tmp_path / "c.toml", seeded, sink, db_url, [MAIN, OTHER])
    assert run_cli(config, "migrate") == 0
    refuse_list_1001(db_url)
    settings = load_settings(config)
    engine = make_engine(settings.database.url)
    daemon = build_daemon(settings, engine)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        for cfg in settings.lists:
            daemon.run_list(cfg)
    logged = "\n".join(
        r.getMessage() + (r.exc_text or "") + str(r.exc_info or "") for r in caplog.records
    )
    assert REFUSAL in logged
    assert_clean(logged)
    failed = daemon.metrics.runs.labels(list_id="1001", status="failed")
    assert failed._value.get() == 1
    engine.dispose()
    statuses = status_json(config)
    assert statuses[1001]["last_run"]["status"] == "failed"
    assert statuses[1002]["last_run"]["status"] == "ok"
    assert "@example.com" not in json.dumps(statuses)
