"""A full disk mid-sync: one clear line, nothing half-written, nothing lost once there is room."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state import engine as db

from .harness import (
    FIELD,
    assert_no_change_under_two_ids,
    assert_profiles_match,
    run_cli,
    write_config,
)

MAIN = {"id": 1001, "user_id_field": FIELD}


class PageCap:
    """SQLite's max_page_count makes writes fail with SQLITE_FULL, as a full disk does."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pages: int | None = None
        original = db._sqlite_pragmas

        def pragmas(dbapi_connection: Any, record: Any) -> None:
            original(dbapi_connection, record)
            if self.pages is not None:
                dbapi_connection.execute(f"PRAGMA max_page_count = {self.pages}")

        monkeypatch.setattr(db, "_sqlite_pragmas", pragmas)


def page_count(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(text("PRAGMA page_count")).scalar_one())
    engine.dispose()
    return count


def test_disk_full_then_room_again(
    tmp_path: Path,
    sim: ListrakSimulator,
    sink: SegmentSink,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 400, field_id=FIELD, seed=8)
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    config = write_config(tmp_path / "c.toml", sim, sink, sqlite_url, [MAIN])
    assert run_cli(config, "sync") == 0
    for email in [str(v["email"]) for v in list(sim.truth(1001, FIELD).values())[:50]]:
        sim.unsubscribe(1001, email)
    for n in range(3000):  # enough new rows to need pages the "disk" does not have
        sim.subscribe(1001, f"more{n}@example.com", {FIELD: f"crm-more-{n}"})
    cap = PageCap(monkeypatch)
    cap.pages = page_count(sqlite_url) + 2
    capsys.readouterr()
    assert run_cli(config, "sync") != 0
    err = capsys.readouterr().err
    assert "database error: database or disk is full" in err
    assert "Traceback" not in err and "INSERT" not in err and "@example.com" not in err
    assert len(err.strip().splitlines()) == 1
    cap.pages = None
    # The list's lock needs no write to be given back, so the next run takes it at once.
    assert run_cli(config, "sync") == 0
    assert_profiles_match(sim, sink, [MAIN])
    assert_no_change_under_two_ids(sink.messages)
