"""A request body turned into what the store must keep, and counts of what it may drop."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson

from .elements import FramingError, array_elements, is_one_value
from .mapping import Mapped, Mappings
from .membership import Ignored, IgnoreReason, parse_item

UNMAPPED = "unmapped"
# The newest event wins, so one dated ahead of its arrival would fix its value until that
# time came (an event of 9999 forever). Segment's clocks and ours may differ a little: an
# event up to this far ahead of its arrival is believed, any later one is refused.
CLOCK_SKEW = timedelta(minutes=5)
# An item no parser takes, in a body whose framing is sound: nested past the parsers' depth.
UNDECODABLE = "undecodable"


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


class _Undecodable:
    """Stands in for an item that could not be decoded, so it is counted with the rest."""


UNDECODABLE_ITEM = _Undecodable()


def decode_items(body: bytes) -> list[object]:
    """The body's items: an array's elements, or a single document as one item.

    When the whole body fails, its items are decoded one by one: a single item too deep for
    the parsers is then one undecodable item, and the rest of the batch is kept.
    """
    try:
        document = _decode(body)
    except (ValueError, RecursionError):
        return _decode_each(body)
    return document if isinstance(document, list) else [document]


def _decode(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # JSON.stringify writes a lone surrogate as a valid \ud800 escape that orjson refuses;
        # the standard parser takes it, so one odd trait cannot lose a whole batch.
        return json.loads(raw)


def _decode_each(body: bytes) -> list[object]:
    if not body.lstrip().startswith(b"["):
        # A single document: one item, undecodable if it is at least a whole object.
        if is_one_value(body):
            return [UNDECODABLE_ITEM]
        raise NotJsonError("the body is not JSON")
    try:
        return [_decode_or_mark(body[start:end]) for start, end in array_elements(body)]
    except FramingError:
        raise NotJsonError("the body is not JSON") from None


def _decode_or_mark(raw: bytes) -> object:
    try:
        return _decode(raw)
    except (ValueError, RecursionError):
        return UNDECODABLE_ITEM


def collect(items: Iterable[object], mappings: Mappings, now: datetime | None = None) -> Ingest:
    """Parse and map each item; what is not a mapped membership is only counted. `now` is
    when the items arrived (by default, this moment): no event is believed to come later."""
    latest = (now or datetime.now(UTC)) + CLOCK_SKEW
    mapped: list[Mapped] = []
    ignored: Counter[str] = Counter()
    for item in items:
        outcome = _outcome(item, mappings, latest)
        if isinstance(outcome, str):
            ignored[outcome] += 1
        else:
            mapped.append(outcome)
    return Ingest(tuple(mapped), dict(ignored))


def _outcome(item: object, mappings: Mappings, latest: datetime) -> Mapped | str:
    """The item's mapped membership, or the reason it is only counted."""
    if item is UNDECODABLE_ITEM:
        return UNDECODABLE
    parsed = parse_item(item)
    if isinstance(parsed, Ignored):
        return parsed.reason.value
    if parsed.timestamp > latest:
        return IgnoreReason.FUTURE_TIMESTAMP.value
    mapping = mappings.resolve(parsed.audience_key, parsed.space_id)
    return UNMAPPED if mapping is None else Mapped(parsed, mapping)
