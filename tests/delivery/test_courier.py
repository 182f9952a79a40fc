"""The courier's answers on PostgreSQL: written beside the scan, an outage only after them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from listrak_source.delivery.context import ListRun
from listrak_source.delivery.courier import Courier
from listrak_source.records import Delivery, RetryPolicy

NOW = datetime(2026, 12, 7, 9, tzinfo=UTC)
# Enough messages that the courier posts each page at once rather than gathering more.
PAGE = 2000


class Ledger:
    """The outbox's writes as spans of time; a sent mark takes a while, as at 1 M rows."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []

    def _span(self, name: str, seconds: float) -> None:
        start = time.monotonic()
        time.sleep(seconds)
        self.spans.append((name, start, time.monotonic()))

    def pending(self, list_id: int, now: datetime, *, after: str = "", limit: int = 0) -> list[Any]:
        return []

    def mark_sent(self, list_id: int, message_ids: Sequence[str]) -> int:
        if message_ids:
            self._span("sent", 0.5)
        return len(message_ids)

    def mark_rejected(
        self, list_id: int, refusals: Sequence[Any], now: datetime, policy: RetryPolicy
    ) -> int:
        return 0

    def note_waiting(self, list_id: int, now: datetime, label: str) -> int:
        self._span("waiting", 0.0)
        return 0


def _run() -> ListRun:
    result = SimpleNamespace(delivered=0, failed=0, outage=None)
    ctx = SimpleNamespace(clock=lambda: NOW, settings=None)
    return cast(ListRun, SimpleNamespace(ctx=ctx, cfg=SimpleNamespace(id=1001), result=result))


def test_an_outage_is_labelled_only_after_the_answers_before_it_are_written() -> None:
    """Labelling the due rows while some of them were being marked sent deadlocked on
    PostgreSQL: the scan's thread waits for the writer of the answers first."""
    answers = iter([Delivery(accepted=[f"m{n}" for n in range(PAGE)]), Delivery(outage="down")])
    ledger = Ledger()
    courier = Courier(_run(), lambda _rows: next(answers), ledger, records_answers=True)
    courier.page(list(range(PAGE)))
    courier.page(list(range(PAGE)))  # Segment is down by the time this one is posted
    for _ in range(100):
        if courier.outage is not None:
            break
        time.sleep(0.05)
    courier.page([])  # the next page settles what was answered: the outage is labelled
    courier.finish()
    names = [name for name, _, _ in ledger.spans]
    assert names == ["sent", "waiting"]
    (_, _, sent_end), (_, waiting_start, _) = ledger.spans
    assert waiting_start >= sent_end
