"""A page split into each contact's bytes says what decoding it whole says, or is not split.

The rule, for any page: when `split_page` answers, every piece that decodes is one of the
page's contacts, in order, and the envelope is the page's own; when any piece is not one
JSON object, the page is decoded whole. Pages as Listrak sends them always split.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
from hypothesis import example, given
from hypothesis import strategies as st

from listrak_source.listrak.pieces import contact_json, decode, digests, split_page
from listrak_source.records import Pieces

TRICKY = ['},{"emailAddress":', '"}]', "\\", "é", "\u2028", '{"data":[', "\n"]
text = st.one_of(st.sampled_from(TRICKY), st.text(max_size=8))
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), text)
value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["emailAddress", "value", "data", "x"]), inner, max_size=3),
    ),
    max_leaves=6,
)
contact = st.builds(
    lambda email, rest: {"emailAddress": email, **rest},
    text,
    st.dictionaries(
        st.sampled_from(["subscriptionState", "segmentationFieldValues", "x"]), value, max_size=3
    ),
)
# Any object at all: the first key of each may differ.
anything = st.dictionaries(st.sampled_from(["emailAddress", "a", "b"]), value, max_size=3)
envelope = st.dictionaries(
    st.sampled_from(["status", "nextPageCursor", "errors"]), value, max_size=3
)


def dump(body: dict[str, Any], style: int) -> bytes:
    if style == 0:
        return orjson.dumps(body)
    if style == 1:
        return json.dumps(body).encode()
    return json.dumps(body, indent=style - 1, ensure_ascii=False).encode()


def page(head: dict[str, Any], data: list[Any], tail: dict[str, Any], style: int) -> bytes:
    tail = {k: v for k, v in tail.items() if k not in head}
    return dump({**head, "data": data, **tail}, style)


@given(
    st.dictionaries(st.sampled_from(["status", "nextPageCursor"]), scalar, max_size=2),
    st.lists(st.one_of(contact, anything, value), max_size=5),
    envelope,
    st.integers(0, 3),
)
@example({"status": 200}, [{"emailAddress": "a", "v": [{"x": 1}, {"emailAddress": "b"}]}], {}, 0)
@example(
    {},
    [{"emailAddress": "a", "v": [{"x": 1}, {"emailAddress": "b", "y": 1}, {"emailAddress": "c"}]}],
    {},
    0,
)
@example({}, [{"emailAddress": "a"}, {"b": 1, "emailAddress": "c"}], {}, 0)
@example({}, [{"emailAddress": '"},{"emailAddress":"'}], {}, 0)
def test_pieces_decode_to_the_page_s_own_contacts_or_the_page_is_decoded_whole(
    head: dict[str, Any], data: list[Any], tail: dict[str, Any], style: int
) -> None:
    content = page(head, data, tail, style)
    pieces = split_page(content)
    if pieces is None:
        return
    body = json.loads(content)
    assert json.loads(pieces.envelope) == {**body, "data": []}
    decoded = decode(pieces, [0] * len(pieces.parts))
    assert decoded is None or decoded == body["data"]
    if decoded is not None:
        assert [json.loads(contact_json(pieces, i)) for i in range(len(pieces.parts))] == decoded


@given(
    st.dictionaries(st.sampled_from(["status", "nextPageCursor"]), scalar, max_size=2),
    st.lists(contact, min_size=1, max_size=5),
    st.dictionaries(st.sampled_from(["nextPageCursor", "x"]), scalar, max_size=2),
    st.integers(0, 4),
)
def test_contacts_that_open_with_the_same_key_and_hold_no_contact_always_split(
    head: dict[str, Any], data: list[dict[str, Any]], tail: dict[str, Any], style: int
) -> None:
    flat = [
        {"emailAddress": str(c["emailAddress"]), "subscriptionState": str(c.get("x"))} for c in data
    ]
    pieces = split_page(page(head, flat, tail, style))
    assert pieces is not None
    assert decode(pieces, [0] * len(pieces.parts)) == flat


@given(st.binary(max_size=300))
@example(b'{"data":[{"emailAddress":1}')
@example(b'{"data":[{"emailAddress":1}]')
@example(b'{"data":[{"emailAddress":"\xff"}]}')
@example(b'{"x":{"data":[{"emailAddress":1}]},"data":[]}')
def test_any_bytes_split_or_not_without_an_error(content: bytes) -> None:
    pieces = split_page(content)
    if pieces is not None:
        decode(pieces, [0] * len(pieces.parts))


def test_the_same_bytes_give_the_same_digest_and_a_context_changes_every_one() -> None:
    content = orjson.dumps({"data": [{"emailAddress": "a@x.io"}, {"emailAddress": "a@x.io"}]})
    pieces = split_page(content)
    assert pieces is not None
    one, other = digests(pieces, b"field 7"), digests(pieces, b"field 8")
    assert one[0] == one[1] and other[0] == other[1] and one[0] != other[0]
    assert all(-(2**63) <= d < 2**63 and d != 0 for d in one + other)


@given(st.lists(st.binary(max_size=400), min_size=1, max_size=20), st.binary(max_size=40))
@example([b""], b"")
def test_digests_are_the_ones_stored_rows_already_hold(parts: list[bytes], context: bytes) -> None:
    """BLAKE2b of 8 bytes keyed by the context and head's own hash, read little-endian and
    signed, 0 made 1: a changed formula would make every stored digest new."""
    pieces = Pieces(b'{"emailAddress":', parts, b'{"data":[]}')
    key = hashlib.blake2b(context + b"\0" + pieces.head, digest_size=32).digest()
    expected = [
        int.from_bytes(
            hashlib.blake2b(part, digest_size=8, key=key).digest(), "little", signed=True
        )
        or 1
        for part in parts
    ]
    assert digests(pieces, context) == expected


def test_a_page_listrak_sends_splits_into_its_contacts() -> None:
    content = (
        b'{"status":200,"nextPageCursor":"abc","data":[{"emailAddress":"a@x.io","subscriptionState":'
        b'"Subscribed","segmentationFieldValues":[{"segmentationFieldId":1,"value":"u"},'
        b'{"segmentationFieldId":2,"value":"v"}]},{"emailAddress":"b@x.io","subscriptionState":'
        b'"Subscribed","segmentationFieldValues":[]}]}'
    )
    pieces = split_page(content)
    assert pieces is not None and len(pieces.parts) == 2
    assert pieces.envelope == b'{"status":200,"nextPageCursor":"abc","data":[]}'
    assert contact_json(pieces, 1) == (
        b'{"emailAddress":"b@x.io","subscriptionState":"Subscribed","segmentationFieldValues":[]}'
    )
