"""The emitter against the sink with the real client: accepted ids, failures, pacing."""

from __future__ import annotations

from datetime import UTC, datetime

from listrak_source.config import SegmentSettings
from listrak_source.records import Pending
from listrak_source.segment.emitter import BytePacer, SegmentEmitter, estimated_size

WHEN = datetime(2026, 11, 23, tzinfo=UTC)


def rows(count: int) -> list[Pending]:
    return [
        Pending(1, f"u{i}@x.io", f"u{i}@x.io", i % 2 == 0, None, f"m-{i}", WHEN)
        for i in range(count)
    ]


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_pacer_holds_the_byte_rate() -> None:
    fake = FakeTime()
    pacer = BytePacer(1000, clock=fake.clock, sleep=fake.sleep)
    for _ in range(10):
        pacer.take(500)
    assert abs(fake.now - 5.0) < 1e-9  # 5000 bytes at 1000 bytes a second


def test_deliver_accepts_and_reports(sink) -> None:
    settings = SegmentSettings(write_key=sink.write_key, host=sink.url, max_backoff_seconds=1)
    delivery = SegmentEmitter(settings).deliver(rows(300), "Listrak_list_1")
    assert sorted(delivery.accepted) == sorted(f"m-{i}" for i in range(300))
    assert {m["messageId"] for m in sink.messages} == set(delivery.accepted)
    sink.faults.fail_next(100, status=400)
    failed = SegmentEmitter(settings).deliver(rows(5), "Listrak_list_1")
    assert failed.accepted == [] and set(failed.failed) == {f"m-{i}" for i in range(5)}
    assert "400" in next(iter(failed.failed.values()))


def test_default_pace_is_segments_50_requests_a_second() -> None:
    settings = SegmentSettings(write_key="k")
    assert SegmentEmitter(settings)._pacer.rate == 50 * 475_000


def test_deliver_is_paced(sink) -> None:
    fake = FakeTime()
    settings = SegmentSettings(write_key=sink.write_key, host=sink.url)
    batch = rows(50)
    pacer = BytePacer(100.0, clock=fake.clock, sleep=fake.sleep)
    SegmentEmitter(settings, pacer=pacer).deliver(batch, "t")
    expected = sum(estimated_size(r, "t") for r in batch) / 100.0
    assert abs(fake.now - expected) < 1e-6
    assert len(sink.messages) == 50
