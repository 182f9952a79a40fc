"""The emitter against the sink: pending rows become identifies; Segment's answers decide."""

from __future__ import annotations

from datetime import UTC, datetime

from listrak_source.config import SegmentSettings
from listrak_source.records import Pending
from listrak_source.segment.emitter import SegmentEmitter
from listrak_source.simulator import SegmentSink

WHEN = datetime(2026, 11, 23, tzinfo=UTC)
TRAIT = "Listrak_list_1"


def rows(count: int) -> list[Pending]:
    return [
        Pending(1, f"u{i}@x.io", f"u{i}@x.io", i % 2 == 0, None, f"m-{i}", WHEN)
        for i in range(count)
    ]


def settings(sink: SegmentSink) -> SegmentSettings:
    return SegmentSettings(
        write_key=sink.write_key, host=sink.url, max_retries=1, max_backoff_seconds=0.01
    )


def test_every_accepted_row_is_named_and_sent_as_the_dry_run_prints_it(sink: SegmentSink) -> None:
    delivery = SegmentEmitter(settings(sink)).deliver(rows(300), TRAIT)
    assert sorted(delivery.accepted) == sorted(f"m-{i}" for i in range(300))
    assert delivery.rejected == {} and delivery.outage is None
    sent = {m["messageId"]: m for m in sink.messages}
    assert sent["m-0"]["traits"] == {"email": "u0@x.io", TRAIT: True}
    assert sent["m-1"]["traits"] == {"email": "u1@x.io", TRAIT: None}
    assert sent["m-1"]["anonymousId"] == "u1@x.io" and "userId" not in sent["m-1"]


def test_a_refused_row_is_named_alone_and_the_rest_are_accepted(sink: SegmentSink) -> None:
    sink.faults.poison.update({"u7@x.io"})
    delivery = SegmentEmitter(settings(sink)).deliver(rows(20), TRAIT)
    assert set(delivery.rejected) == {"m-7"} and "400" in delivery.rejected["m-7"]
    assert len(delivery.accepted) == 19 and delivery.outage is None


def test_an_outage_names_nothing_and_says_why(sink: SegmentSink) -> None:
    sink.faults.outage = True
    delivery = SegmentEmitter(settings(sink)).deliver(rows(20), TRAIT)
    assert delivery.accepted == [] and delivery.rejected == {}
    assert delivery.outage is not None and "503" in delivery.outage
    assert delivery.requests == 2  # the first try and the one retry, then the circuit opens
