"""A contact whose subscriptionState is null is in the state its scan asked for: Listrak
chose it by that state. Read alone, it says nothing of its state, so a subscriber is kept
and the run says it skipped one, never `ok` as if it knew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from listrak_source.simulator import ListrakSimulator, SegmentSink

from .harness import FIELD, member_rows, run_cli, run_statuses, status_json, write_config

LIST = 1001
TRAIT = f"Listrak_list_{LIST}"
T0 = datetime.now(UTC) - timedelta(days=1)


def _config(tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str, **item: object):
    sim.set_now(T0)
    sim.add_list(LIST, "Main", [FIELD])
    for n in range(10):
        sim.subscribe(LIST, f"c{n}@example.com", {FIELD: f"crm-{n}"})
    lists = [{"id": LIST, "user_id_field": FIELD, **item}]
    config = write_config(tmp_path / "c.toml", sim, sink, db_url, lists)
    rate = "requests_per_second = 1000"  # pages of 3: the contact is recognized by its bytes
    config.write_text(config.read_text().replace(rate, f"{rate}\npage_size = 3", 1))
    return config


def _trait(sink: SegmentSink, email: str) -> object:
    """What Segment holds for the contact's trait, from the messages in order."""
    held: object = "never sent"
    for message in sink.messages:
        if message["anonymousId"] == email and TRAIT in message["traits"]:
            held = message["traits"][TRAIT]
    return held


def test_an_unsubscribed_scans_contact_without_a_state_is_unsubscribed(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    config = _config(tmp_path, sim, sink, db_url, full_scan_every="24h")
    assert run_cli(config, "sync") == 0
    sim.advance(timedelta(minutes=5))
    sim.unsubscribe(LIST, "c4@example.com")
    sim.override(LIST, "c4@example.com", {"subscriptionState": None})
    assert run_cli(config, "sync") == 0  # an incremental run: its Unsubscribed scan
    assert _trait(sink, "c4@example.com") is None
    sim.advance(timedelta(minutes=5))
    assert run_cli(config, "sync") == 0  # met again, still without a state
    assert _trait(sink, "c4@example.com") is None
    assert member_rows(db_url, LIST)["c4@example.com"]["desired_subscribed"] in (False, 0)


def test_a_subscribed_scans_contact_without_a_state_is_subscribed(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    config = _config(tmp_path, sim, sink, db_url)
    sim.override(LIST, "c2@example.com", {"subscriptionState": None})
    for _ in range(2):  # decoded, then recognized by its bytes
        assert run_cli(config, "sync") == 0
        assert _trait(sink, "c2@example.com") is True


def test_a_contact_read_alone_without_a_state_is_kept_and_the_run_says_so(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Unseen by a full scan, the contact is read alone to confirm it left; its answer
    names no state, and Listrak's report of unsubscribes since the last full scan does not
    name it (it left, in the simulator's clock, a day before): nothing confirms it, so it
    is kept, and the run is `partial`."""
    config = _config(tmp_path, sim, sink, db_url)
    assert run_cli(config, "sync") == 0
    sim.advance(timedelta(minutes=5))
    sim.unsubscribe(LIST, "c3@example.com")
    sim.override(LIST, "c3@example.com", {"subscriptionState": None})
    assert run_cli(config, "sync") == 1
    assert run_statuses(db_url, LIST)[-1] == "partial"
    assert _trait(sink, "c3@example.com") is True
    reasons = [r["reason"] for r in status_json(config)[LIST]["rejects"]]
    assert reasons == ["subscriptionState is missing"]
    sim.override(LIST, "c3@example.com", {"subscriptionState": "Unsubscribed"})
    assert run_cli(config, "sync") == 0
    assert _trait(sink, "c3@example.com") is None


def test_the_same_bytes_from_an_unsubscribed_scan_are_never_recognized_as_subscribed(
    tmp_path: Path, sim: ListrakSimulator, sink: SegmentSink, db_url: str
) -> None:
    """Stored from a Subscribed scan, a contact without a state is served by the
    Unsubscribed scan in the very same bytes once it leaves: it is decoded there, and
    unsubscribed, not recognized by the digest its subscription left."""
    config = _config(tmp_path, sim, sink, db_url, full_scan_every="24h")
    frozen = {"subscriptionState": None, "subscribeDate": "2026-01-01T00:00:00"}
    frozen |= dict.fromkeys(["resubscribeDate", "unsubscribeDate", "unsubscribeMethod"])
    sim.override(LIST, "c4@example.com", {**frozen, "subscribeMethod": None})
    assert run_cli(config, "sync") == 0
    assert _trait(sink, "c4@example.com") is True
    sim.advance(timedelta(minutes=5))
    sim.unsubscribe(LIST, "c4@example.com")
    assert run_cli(config, "sync") == 0  # incremental: past two pages, it recognizes
    assert _trait(sink, "c4@example.com") is None
