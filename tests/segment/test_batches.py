"""Packing: the batch limits, the 32 KB refusal, and sizes counted as the library encodes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listrak_source.segment.batches import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Batch,
    Refused,
    envelope_bytes,
    pack,
    wire_size,
)

from .conftest import email, identifies, identify

KEY = "a-write-key"
ENVELOPE = envelope_bytes(KEY)


def library_body(batch: Batch) -> str:
    """The body segment.analytics.request.post would send for this batch."""
    sent_at = "2026-11-23T10:00:00.123456+00:00"
    return json.dumps({"batch": batch.messages, "sentAt": sent_at, "writeKey": KEY})


def batches(items: list[Batch | Refused]) -> list[Batch]:
    return [item for item in items if isinstance(item, Batch)]


def test_cuts_at_2500_events() -> None:
    out = batches(list(pack(identifies(6000), envelope=ENVELOPE)))
    assert [len(b.ids) for b in out] == [2500, 2500, 1000]
    assert [i for b in out for i in b.ids] == [f"m-{i}" for i in range(6000)]
    assert all(m["messageId"] == i for b in out for i, m in zip(b.ids, b.messages, strict=True))


def test_cuts_under_the_byte_limit() -> None:
    out = batches(list(pack(identifies(300, note="n" * 10_000), envelope=ENVELOPE)))
    assert len(out) == 7  # 48 messages of ~10 KB a batch
    for batch in out:
        assert len(library_body(batch)) <= batch.size <= MAX_BATCH_BYTES
    assert sum(len(b.ids) for b in out) == 300


def test_a_message_over_32kb_is_refused_and_never_batched() -> None:
    big_id, big = identify(7, note="n" * MAX_MESSAGE_BYTES)
    items = list(pack([identify(1), (big_id, big), identify(2)], envelope=ENVELOPE))
    refused = [item for item in items if isinstance(item, Refused)]
    assert [r.message_id for r in refused] == [big_id]
    assert "over Segment's 32768-byte limit" in refused[0].reason
    assert email(7) not in refused[0].reason and "\n" not in refused[0].reason
    assert [b.ids for b in batches(items)] == [["m-1", "m-2"]]


def test_non_ascii_is_measured_as_the_library_escapes_it() -> None:
    # 12,000 'é' are 24 KB of UTF-8 but 72 KB once json.dumps escapes each as \u00e9.
    message_id, message = identify(3, note="é" * 12_000)
    assert wire_size(message) == len(json.dumps(message))
    assert isinstance(next(pack([(message_id, message)], envelope=ENVELOPE)), Refused)


def test_a_message_json_cannot_hold_is_refused() -> None:
    message_id, message = identify(4)
    message["traits"]["odd"] = {1, 2}
    refused = next(pack([(message_id, message)], envelope=ENVELOPE))
    assert refused == Refused("m-4", "identify cannot be encoded as JSON")


def test_holds_one_batch_at_a_time() -> None:
    read = 0

    def source() -> Iterator[tuple[str, dict[str, Any]]]:
        nonlocal read
        for item in identifies(10_000):
            read += 1
            yield item

    first = next(pack(source(), envelope=ENVELOPE))
    assert isinstance(first, Batch) and len(first.ids) == 2500
    assert read == 2501  # the message that did not fit starts the next batch


_text = st.text(st.characters(codec="utf-8"), max_size=300)
_traits = st.dictionaries(
    st.text(max_size=20), st.one_of(_text, st.integers(), st.booleans(), st.none()), max_size=5
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_traits, min_size=1, max_size=40), st.integers(min_value=700, max_value=6000))
def test_counted_size_never_falls_short_of_the_library_body(
    traits: list[dict[str, Any]], limit: int
) -> None:
    messages = [(f"m-{i}", {"type": "identify", "traits": t}) for i, t in enumerate(traits)]
    for batch in batches(list(pack(messages, envelope=ENVELOPE, max_bytes=limit))):
        assert len(library_body(batch)) <= batch.size
        assert batch.size <= limit or len(batch.ids) == 1


@pytest.mark.parametrize("filler", [",", ":", ", ", '": "'])
def test_separators_inside_strings_do_not_make_a_message_too_large(filler: str) -> None:
    # The quick measure counts a ',' or ':' in a string as a separator's space: a message
    # of some 17 KB would count as 34. Only a message over the limit as sent is refused.
    fits_id, fits = identify(7, note=filler * (17_000 // len(filler)))
    over_id, over = identify(8, note=filler * (33_000 // len(filler)))
    items = list(pack([(fits_id, fits), (over_id, over)], envelope=ENVELOPE))
    assert [r.message_id for r in items if isinstance(r, Refused)] == [over_id]
    batch = batches(items)[0]
    assert batch.ids == [fits_id] and len(library_body(batch)) <= batch.size
