"""Only a positive fact from Listrak removes a trait: absence alone is confirmed first."""

from __future__ import annotations

from pathlib import Path

import pytest

from listrak_source.simulator import ListrakSimulator, SegmentSink, rebuild_profiles

from .harness import FIELD, member_rows, run_cli, status_json, write_config

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
