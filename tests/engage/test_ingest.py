"""A body into an Ingest: what the store must keep, and counts of what it may drop."""

from __future__ import annotations

import json

import orjson
import pytest

from listrak_source.engage.ingest import (
    UNDECODABLE,
    UNMAPPED,
    Ingest,
    NotJsonError,
    collect,
    decode_items,
)
from listrak_source.engage.mapping import AudienceMapping, Mappings

from ..audiences._events import identify, track

VIP = AudienceMapping("first_time_shopper", list_id=1, field_id=10)


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b'[{"a":1},2,"x",null,[]]', [{"a": 1}, 2, "x", None, []]),
        (b'{"a":1}', [{"a": 1}]),
        (b"42", [42]),
        (b"[]", []),
        (b' \n"text"\n ', ["text"]),
    ],
)
def test_items_of_a_body(body: bytes, items: list[object]) -> None:
    assert decode_items(body) == items


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[1,", b'{"a":1}{"b":2}', b"\xff\xfe", b"[" * 100_000]
)
def test_a_body_that_is_not_json_is_refused(body: bytes) -> None:
    with pytest.raises(NotJsonError, match=r"^the body is not JSON$"):
        decode_items(body)


def test_a_lone_surrogate_loses_only_its_own_event() -> None:
    # JSON.stringify writes a lone surrogate as an escape, which is valid JSON.
    body = (
        b"["
        + orjson.dumps(track(email="jane@example.com"))
        + b","
        + json.dumps(track(email="ja\ud800ne@example.com", message_id="m2")).encode()
        + b"]"
    )
    ingest = collect(decode_items(body), Mappings([VIP]))
    assert ingest.accepted == 1
    assert ingest.ignored == {"invalid_email": 1}


def test_collect_maps_memberships_and_counts_the_rest() -> None:
    items: list[object] = [
        track(message_id="m1"),
        identify(message_id="m2"),
        track(key="unknown", message_id="m3"),
        track(member="true", message_id="m4"),
        track(email=None, message_id="m5"),
        "junk",
        {"type": "page"},
        {"type": "track"},
    ]
    ingest = collect(items, Mappings([VIP]))
    assert [m.membership.message_id for m in ingest.memberships] == ["m1", "m2"]
    assert all(m.mapping == VIP for m in ingest.memberships)
    assert ingest.ignored == {
        UNMAPPED: 1,
        "value_not_boolean": 1,
        "missing_email": 1,
        "not_an_object": 1,
        "not_a_membership_event": 2,
    }
    assert ingest.accepted == 2


def test_an_empty_batch_is_an_empty_ingest() -> None:
    assert collect([], Mappings([VIP])) == Ingest((), {})


def nested(depth: int) -> bytes:
    """A JSON item nested `depth` levels deep, as small as such an item can be."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def test_an_item_nested_too_deep_loses_only_itself() -> None:
    # orjson refuses more than 1,024 levels and the standard parser stops near its recursion
    # limit: the whole body fails, but the other items of the batch are Segment's to keep.
    good = [track(message_id="m1"), track(message_id="m2")]
    body = b"[" + orjson.dumps(good[0]) + b"," + nested(1025) + b"," + orjson.dumps(good[1]) + b"]"
    ingest = collect(decode_items(body), Mappings([VIP]))
    assert [m.membership.message_id for m in ingest.memberships] == ["m1", "m2"]
    assert ingest.ignored == {UNDECODABLE: 1}


def test_a_single_document_nested_too_deep_is_one_undecodable_item() -> None:
    assert collect(decode_items(nested(1025)), Mappings([VIP])).ignored == {UNDECODABLE: 1}


def test_whitespace_around_the_items_of_a_failed_body_is_allowed() -> None:
    body = b" [ \n" + orjson.dumps(track()) + b" ,\n" + nested(2000) + b"\n ] \n"
    ingest = collect(decode_items(body), Mappings([VIP]))
    assert (ingest.accepted, ingest.ignored) == (1, {UNDECODABLE: 1})


@pytest.mark.parametrize(
    "body",
    [
        b"[" + nested(1025) + b",",  # never closed
        b"[" + nested(1025) + b"]]",  # something after the array
        b"[" + nested(1025) + b",]",  # an empty element
        b"[" + nested(1025) + b'{"b":"x}]',  # a string never closed
        b"[" + nested(1025)[:-1] + b"]]",  # brackets that do not pair
        nested(1025) + nested(1025),  # two documents
    ],
)
def test_a_deep_body_that_is_not_json_is_still_refused(body: bytes) -> None:
    with pytest.raises(NotJsonError):
        decode_items(body)


def test_an_event_dated_after_its_arrival_plus_the_skew_is_refused() -> None:
    from datetime import UTC, datetime

    arrived = datetime(2024, 5, 6, 9, 30, tzinfo=UTC)
    items = [
        track(message_id="in-time", timestamp="2024-05-06T09:35:00.000Z"),
        track(message_id="ahead", timestamp="2024-05-06T09:35:00.001Z"),
        track(message_id="forever", timestamp="9999-12-31T23:59:59.999Z"),
    ]
    ingest = collect(items, Mappings([VIP]), arrived)
    assert [m.membership.message_id for m in ingest.memberships] == ["in-time"]
    assert ingest.ignored == {"future_timestamp": 2}
