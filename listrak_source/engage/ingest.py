"""A request body turned into what the store must keep, and counts of what it may drop."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from .elements import FramingError, array_elements, is_one_value
from .mapping import Mapped, Mappings
from .membership import Ignored, parse_item

UNMAPPED = "unmapped"
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


def collect(items: Iterable[object], mappings: Mappings) -> Ingest:
    """Parse and map each item; what is not a mapped membership is only counted."""
    mapped: list[Mapped] = []
    ignored: Counter[str] = Counter()
    for item in items:
        if item is UNDECODABLE_ITEM:
            ignored[UNDECODABLE] += 1
            continue
        parsed = parse_item(item)
        if isinstance(parsed, Ignored):
            ignored[parsed.reason.value] += 1
            continue
        mapping = mappings.resolve(parsed.audience_key, parsed.space_id)
        if mapping is None:
            ignored[UNMAPPED] += 1
        else:
            mapped.append(Mapped(parsed, mapping))
    return Ingest(tuple(mapped), dict(ignored))
