"""Incremental polling reaches the same profiles as full scans, at a fraction of the pages."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listrak_source.records import Contact, ListState, ScanSpec
from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles
from listrak_source.subscribers.plan import FULL, FULL_LEARNING_MARK, newest_date, plan_scans

from .harness import FIELD, assert_profiles_match, run_cli, status_json, write_config

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
INCREMENTAL = {"id": 1001, "user_id_field": FIELD, "full_scan_every": "24h"}
ALWAYS_FULL = {"id": 1001, "user_id_field": FIELD}


def test_plan_full_until_a_full_scan_is_on_record() -> None:
    now = T0
    kwargs = {"full_scan_every": timedelta(hours=24), "overlap": timedelta(hours=2)}
    assert plan_scans(ListState(), now, **kwargs) == FULL_LEARNING_MARK
    mark = datetime(2026, 10, 1, 7, 30)
    fresh = ListState(last_full_scan_at=now - timedelta(hours=1), high_water_mark=mark)
    assert plan_scans(fresh, now, **kwargs) == (
        ScanSpec(True, mark - timedelta(hours=2), False),
        ScanSpec(False, mark - timedelta(hours=2)),
    )
    stale = ListState(last_full_scan_at=now - timedelta(hours=24), high_water_mark=mark)
    assert plan_scans(stale, now, **kwargs) == FULL
    assert plan_scans(fresh, now, **kwargs, force_full=True) == FULL
    assert plan_scans(fresh, now, full_scan_every=None, overlap=timedelta(hours=2)) == FULL


def test_newest_date_ignores_missing_and_offsets() -> None:
    a = Contact("a@x.io", True, subscribe_date=datetime(2026, 1, 1))
    b = Contact("b@x.io", False, unsubscribe_date=datetime(2026, 3, 1, tzinfo=UTC))
    latest = datetime(2027, 1, 1)
    assert newest_date([a, Contact("c@x.io", True)], None, latest=latest) == datetime(2026, 1, 1)
    assert newest_date([a, b], datetime(2026, 2, 1), latest=latest) == datetime(2026, 3, 1)


def churn(
    sim: ListrakSimulator,
    rng: random.Random,
    round_no: int,
    *,
    visible_only: bool,
    left: list[str] | None = None,
) -> None:
    """Changes at the simulator's current time; removals and field edits only when allowed.

    `left` collects who unsubscribed, so later rounds can bring some of them back: a
    re-subscribe keeps its original subscribeDate, which only useOriginalSubscribeDate=false
    lets an incremental scan see.
    """
    left = [] if left is None else left
    for email in left[:3]:
        sim.subscribe(1001, email)
    del left[:3]
    truth = sim.truth(1001, FIELD)
    keys = rng.sample(sorted(truth), 24)
    for key in keys[:8]:
        sim.unsubscribe(1001, str(truth[key]["email"]))
        left.append(str(truth[key]["email"]))
    for n in range(8):
        sim.subscribe(1001, f"r{round_no}.{n}@example.com", {FIELD: f"crm-{round_no}-{n}"})
    if not visible_only:
        for key in keys[8:12]:
            sim.remove(1001, str(truth[key]["email"]))
        for key in keys[12:16]:
            sim.set_field(1001, str(truth[key]["email"]), FIELD, f"edited-{round_no}")


@pytest.fixture
def twin(tmp_path: Path, sim: ListrakSimulator, db_url: str):
    """One Listrak, two workers: incremental (with its sink) and always-full (with another)."""
    sim.set_now(T0)
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 2000, field_id=FIELD, seed=21)
    sim.advance(timedelta(days=1))
    sim.subscribe(1001, "trickle@example.com")  # lists always have a recent subscriber
    with SegmentSink() as inc_sink, SegmentSink() as full_sink:
        inc = write_config(tmp_path / "inc.toml", sim, inc_sink, db_url, [INCREMENTAL])
        full = write_config(
            tmp_path / "full.toml",
            sim,
            full_sink,
            f"sqlite:///{tmp_path / 'full.db'}",
            [ALWAYS_FULL],
        )
        yield inc, inc_sink, full, full_sink


def sync_both(twin, sim: ListrakSimulator) -> None:
    inc, _, full, _ = twin
    assert run_cli(inc, "sync") == 0
    assert run_cli(full, "sync") == 0


def trait_profiles(sink: SegmentSink) -> dict[str, tuple[object, object]]:
    return {
        k: (p["traits"].get("Listrak_list_1001"), p["user_id"])
        for k, p in rebuild_profiles(sink.messages).items()
        if p["traits"].get("Listrak_list_1001")
    }


def test_incremental_matches_full_scans(twin, sim: ListrakSimulator) -> None:
    inc, inc_sink, _, full_sink = twin
    rng = random.Random(5)
    left: list[str] = []
    sync_both(twin, sim)  # the first run is full for both
    for round_no in range(4):
        sim.advance(timedelta(minutes=15))
        churn(sim, rng, round_no, visible_only=True, left=left)
        before = len(sim.requests)
        sync_both(twin, sim)
        states = [r.query.get("subscriptionState") for r in sim.requests[before:]]
        assert "Unsubscribed" in states  # the incremental pair ran
        if round_no:
            assert any(
                r.query.get("useOriginalSubscribeDate") == "false" for r in sim.requests[before:]
            )
        assert trait_profiles(inc_sink) == trait_profiles(full_sink)
    # Removals and profile-field edits are invisible between full scans ...
    churn(sim, rng, 9, visible_only=False)
    sync_both(twin, sim)
    assert trait_profiles(inc_sink) != trait_profiles(full_sink)
    # ... until the next full scan, forced here, due after full_scan_every otherwise.
    assert run_cli(inc, "sync", "--full") == 0
    assert trait_profiles(inc_sink) == trait_profiles(full_sink)
    assert_profiles_match(sim, inc_sink, [INCREMENTAL])
    assert status_json(inc)[1001]["last_run"]["full_scan"] is True


def test_incremental_reads_a_page_or_two(twin, sim: ListrakSimulator, monkeypatch) -> None:
    inc, inc_sink, _, _ = twin
    monkeypatch.setenv("LISTRAK_SOURCE_LISTRAK__PAGE_SIZE", "100")
    assert run_cli(inc, "sync") == 0  # full: 21 pages of 100
    sim.advance(timedelta(hours=3))
    churn(sim, random.Random(8), 1, visible_only=True)
    before = len(sim.requests)
    assert run_cli(inc, "sync") == 0
    pages = [r for r in sim.requests[before:] if r.path.endswith("/Contact")]
    assert len(pages) == 2, [r.query for r in pages]
    assert all("startDate" in r.query for r in pages)
    sent = {m["anonymousId"] for m in inc_sink.messages[2001:]}
    assert len(sent) == 16


def test_due_full_scan_and_sweep(twin, sim: ListrakSimulator) -> None:
    inc, inc_sink, _, _ = twin
    assert run_cli(inc, "sync") == 0
    email = str(next(iter(sim.truth(1001, FIELD).values()))["email"])
    sim.remove(1001, email)
    sim.advance(timedelta(hours=1))
    # The incremental run cannot see a removal, and must not sweep.
    assert run_cli(inc, "sync") == 0
    assert status_json(inc)[1001]["last_run"]["full_scan"] is False
    assert rebuild_profiles(inc_sink.messages)[email.lower()]["traits"]["Listrak_list_1001"]
    # run history, not the wall clock, says when a full scan is due: age the last one
    from sqlalchemy import create_engine, text

    url = next(
        line.split('"')[1] for line in inc.read_text().splitlines() if line.startswith("url =")
    )
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE list_state SET last_full_scan_at = :t"), {"t": datetime(2020, 1, 1)}
        )
    engine.dispose()
    assert run_cli(inc, "sync") == 0
    assert status_json(inc)[1001]["last_run"]["full_scan"] is True
    assert "Listrak_list_1001" not in rebuild_profiles(inc_sink.messages)[email.lower()]["traits"]


def test_a_future_date_neither_blinds_polling_nor_goes_unreported(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    sim.set_now(T0)
    sim.add_list(1001, "Main", field_ids=[FIELD])
    sim.seed(1001, 30, field_id=FIELD, seed=4)
    sim.set_now(datetime(2099, 1, 1, tzinfo=UTC))
    sim.subscribe(1001, "future@example.com")
    sim.set_now(T0 + timedelta(hours=1))
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, [INCREMENTAL])
    assert run_cli(config, "sync") == 0  # the first run is full
    note = status_json(config)[1001]["last_run"]["note"]
    assert "2098-12-31T19:00:00" in note and "future@example.com" not in note
    sim.advance(timedelta(hours=1))
    sim.subscribe(1001, "later@example.com")
    assert run_cli(config, "sync") == 0
    assert status_json(config)[1001]["last_run"]["full_scan"] is False
    assert "later@example.com" in {m["anonymousId"] for m in sink.messages}
    assert_profiles_match(sim, sink, [INCREMENTAL])
