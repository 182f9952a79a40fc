"""Identify dicts built as the worker builds them, a fake clock, and a poster for the sink."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from listrak_source.messages import Pending, identify_message
from listrak_source.segment.poster import BatchPoster
from listrak_source.simulator import SegmentSink

WHEN = datetime(2026, 11, 23, tzinfo=UTC)
TRAIT = "Listrak_list_1"


def email(i: int) -> str:
    return f"u{i}@x.io"


def identify(i: int, note: str = "") -> tuple[str, dict[str, Any]]:
    """The (message id, identify) pair for contact i; `note` pads it to a size."""
    row = Pending(1, email(i), email(i), i % 3 != 0, f"user-{i}" if i % 2 else None, f"m-{i}", WHEN)
    message = identify_message(row, TRAIT)
    if note:
        message["traits"]["note"] = note
    return row.message_id, message


def identifies(count: int, note: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    return (identify(i, note) for i in range(count))


class FakeTime:
    """A clock that moves only when slept on, recording each sleep."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def sink_poster(sink: SegmentSink, fake: FakeTime, **options: Any) -> BatchPoster:
    """A poster on the sink whose waits only advance the fake clock."""
    settings: dict[str, Any] = {
        "timeout": 5.0,
        "max_retries": 3,
        "random": lambda: 0.5,
        "sleep": fake.sleep,
        "clock": fake.clock,
    }
    return BatchPoster(options.pop("write_key", sink.write_key), sink.url, **(settings | options))
