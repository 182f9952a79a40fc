"""Contacts Listrak sends as the same bytes as when their rows were written are recognized
without being decoded: what that leaves written, reported and sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

from listrak_source.simulator import ListrakSimulator, SegmentSink
from listrak_source.state.schema import runs

from .harness import FIELD, assert_profiles_match, run_cli, write_config

LIST = 1001
ITEM = {"id": LIST, "user_id_field": FIELD}


def _config(tmp: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str) -> Path:
    """Pages of 3 contacts: a list of dozens is read in over ten pages."""
    path = write_config(tmp / "config.toml", sim, sink, db_url, [ITEM])
    rate = "requests_per_second = 1000"
    path.write_text(path.read_text().replace(rate, f"{rate}\npage_size = 3", 1))
    return path


def _count_member_writes(url: str) -> None:
    """Every later insert or update of a members row adds a row to `member_writes`."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE member_writes (n INTEGER)"))
        for event in ("INSERT", "UPDATE"):
            conn.execute(
                text(
                    f"CREATE TRIGGER member_{event.lower()} AFTER {event} ON members "
                    "BEGIN INSERT INTO member_writes VALUES (1); END"
                )
            )
    engine.dispose()


def _member_writes(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(text("SELECT count(*) FROM member_writes")).scalar_one())
    engine.dispose()
    return count


def test_a_re_sync_of_an_unchanged_list_writes_no_member_row(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, sqlite_url: str
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 40, field_id=FIELD, seed=5)
    config = _config(tmp_path, sim, sink, sqlite_url)
    assert run_cli(config, "sync") == 0
    _count_member_writes(sqlite_url)
    for _ in range(2):
        assert run_cli(config, "sync", "--full") == 0
    assert _member_writes(sqlite_url) == 0
    # One contact changes: only its row is written, with its change and then its delivery.
    key = sorted(sim.truth(LIST, FIELD))[-1]
    sim.set_field(LIST, key, FIELD, "moved")
    assert run_cli(config, "sync", "--full") == 0
    assert _member_writes(sqlite_url) == 2
    assert_profiles_match(sim, sink, [ITEM])


@pytest.mark.parametrize("repeat", [1, 2])
def test_dates_yet_to_come_are_reported_at_every_scan_whatever_page_they_are_on(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, repeat: int
) -> None:
    sim.add_list(LIST, "Main", field_ids=[FIELD])
    sim.seed(LIST, 30, field_id=FIELD, seed=6)
    # Listrak's clock a day ahead: its dates are a day after our now.
    sim.set_now(datetime.now(UTC) + timedelta(days=1))
    sim.subscribe(LIST, "zz-ahead@example.com", {FIELD: "ahead"})
    sim.set_now(None)
    config = _config(tmp_path, sim, sink, db_url)
    for _ in range(1 + repeat):
        assert run_cli(config, "sync", "--full") == 0
    engine = create_engine(db_url)
    with engine.connect() as conn:
        notes = list(conn.execute(select(runs.c.note).order_by(runs.c.id)).scalars())
    engine.dispose()
    assert len(notes) == 1 + repeat
    assert all(note and "carry dates after Listrak's now" in note for note in notes)
    assert_profiles_match(sim, sink, [ITEM])
