"""A request body turned into what the store must keep, and counts of what it may drop."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from .mapping import Mapped, Mappings
from .membership import Ignored, IgnoreReason, parse_item

UNMAPPED = "unmapped"
# The newest event wins, so one dated ahead of its arrival would fix its value until that
# time came (an event of 9999 forever). Segment's clocks and ours may differ a little: an
# event up to this far ahead of its arrival is believed, any later one is refused.
CLOCK_SKEW = timedelta(minutes=5)


class NotJsonError(ValueError):
    """The body is not a JSON document; Segment never sends one."""


@dataclass(frozen=True, slots=True)
class Ingest:
    """One request's mapped memberships, and by reason the items acknowledged but not used."""

    memberships: tuple[Mapped, ...]
    ignored: Mapping[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        """Memberships the store is asked to keep."""
        return len(self.memberships)


def decode_items(body: bytes) -> list[object]:
    """The body's items: an array's elements, or a single document as one item."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        document = _decode_leniently(body)
    return document if isinstance(document, list) else [document]


def _decode_leniently(body: bytes) -> object:
    # JSON.stringify writes a lone surrogate as a valid \ud800 escape that orjson refuses;
    # the standard parser takes it, so one odd trait cannot lose a whole batch.
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise NotJsonError("the body is not JSON") from None


def collect(items: Iterable[object], mappings: Mappings, now: datetime | None = None) -> Ingest:
    """Parse and map each item; what is not a mapped membership is only counted. `now` is
    when the items arrived (by default, this moment): no event is believed to come later."""
    latest = (now or datetime.now(UTC)) + CLOCK_SKEW
    mapped: list[Mapped] = []
    ignored: Counter[str] = Counter()
    for item in items:
        parsed = parse_item(item)
        if not isinstance(parsed, Ignored) and parsed.timestamp > latest:
            parsed = Ignored(IgnoreReason.FUTURE_TIMESTAMP)
        if isinstance(parsed, Ignored):
            ignored[parsed.reason.value] += 1
            continue
        mapping = mappings.resolve(parsed.audience_key, parsed.space_id)
        if mapping is None:
            ignored[UNMAPPED] += 1
        else:
            mapped.append(Mapped(parsed, mapping))
    return Ingest(tuple(mapped), dict(ignored))
