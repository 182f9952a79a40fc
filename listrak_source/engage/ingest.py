"""A request body turned into what the store must keep, and counts of what it may drop."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import orjson

from .mapping import Mapped, Mappings
from .membership import Ignored, parse_item

UNMAPPED = "unmapped"


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


def collect(items: Iterable[object], mappings: Mappings) -> Ingest:
    """Parse and map each item; what is not a mapped membership is only counted."""
    mapped: list[Mapped] = []
    ignored: Counter[str] = Counter()
    for item in items:
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
