"""A page split into its contacts' bytes says what the page decoded whole says.

Pages as Listrak never sends them, on purpose: the split's markers inside nested values,
another first key, whitespace, escapes, non-ASCII, lone surrogates, the envelope's keys
in any order. Whatever the split makes of a page, the contacts it decodes one by one, with
any of them taken as known, are those decoding the whole page gives, in the same places;
or it gives up and the page is decoded whole.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from listrak_source.errors import ListrakProtocolError
from listrak_source.listrak.contacts import parse_page
from listrak_source.listrak.pieces import contact_json, decode, digests, split_page
from listrak_source.records import Page, RawPage

from .fixtures import make_client, token_response

MARKER = '},{"emailAddress":'
TEXTS = st.sampled_from(
    [
        MARKER,
        '}, {"emailAddress": "x@example.com"',
        '"data":[',
        "]}",
        "\\",
        '"',
        "\u2028",
        "é",
        "𝄞",
        "\ud800",
        "\x00",
        "a@example.com",
        "",
    ]
) | st.text(max_size=6)
# Integers within 64 bits: past them orjson reads a float where json reads an int, and a
# page decoded whole falls back to json only when orjson refuses some other part of it.
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | TEXTS
)
KEYS = st.sampled_from(["emailAddress", "subscriptionState", "value", "data", "k", "}"]) | TEXTS
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
EMAILS = st.sampled_from(["a@example.com", "B@Example.com", "c@example.com", "bad", ""]) | TEXTS
STATES = st.sampled_from(["Subscribed", "Unsubscribed", None, "Other"])
FIELD = 678


@st.composite
def contacts(draw: st.DrawFn) -> dict[str, Any]:
    contact: dict[str, Any] = {}
    if draw(st.integers(0, 9)):  # mostly the address first, as Listrak sends it
        contact["emailAddress"] = draw(EMAILS)
    contact["subscriptionState"] = draw(STATES)
    values = [
        {"segmentationFieldId": draw(st.sampled_from([FIELD, str(FIELD), 1])), "value": v}
        for v in draw(st.lists(SCALARS | VALUES, max_size=2))
    ]
    contact["segmentationFieldValues"] = values
    contact.update(draw(st.dictionaries(KEYS, VALUES, max_size=3)))
    return contact


@st.composite
def pages(draw: st.DrawFn) -> bytes:
    envelope: list[tuple[str, Any]] = [
        ("status", 200),
        ("nextPageCursor", draw(st.none() | TEXTS)),
        ("data", draw(st.lists(contacts(), max_size=5))),
    ]
    extra = draw(st.dictionaries(st.sampled_from(["note", "meta", "count"]), VALUES, max_size=2))
    envelope += extra.items()
    envelope = draw(st.permutations(envelope))
    separators = draw(st.sampled_from([(",", ":"), (", ", ": "), (",", ": "), (", ", ":")]))
    indent = draw(st.sampled_from([None, None, None, 1]))
    ascii_only = draw(st.booleans())
    text = json.dumps(dict(envelope), separators=separators, indent=indent, ensure_ascii=False)
    if ascii_only:
        text = json.dumps(dict(envelope), separators=separators, indent=indent)
    return text.encode("utf-8", "surrogatepass")


def _whole(content: bytes) -> list[Any] | None:
    try:
        body = json.loads(content)
    except ValueError:
        return None
    return body.get("data") if isinstance(body, dict) else None


@given(pages())
def test_a_page_split_decodes_contact_by_contact_as_it_decodes_whole(content: bytes) -> None:
    pieces = split_page(content)
    if pieces is None:
        return
    data = _whole(content)
    decoded = decode(pieces, [0] * len(pieces.parts))
    if decoded is not None:
        assert decoded == data
        assert [json.loads(contact_json(pieces, i)) for i in range(len(pieces.parts))] == data
    # The envelope keeps everything but the contacts (when it decodes: see
    # test_a_nested_object_opening_with_the_first_key_before_a_bracket).
    if decoded is not None:
        assert json.loads(pieces.envelope) == {**json.loads(content), "data": []}


@given(pages(), st.lists(st.booleans(), min_size=5, max_size=5))
def test_contacts_taken_as_known_leave_the_others_in_their_places(
    content: bytes, mask: list[bool]
) -> None:
    """Known or not, each piece is one contact: those decoded are the page's others."""
    pieces = split_page(content)
    if pieces is None or decode(pieces, [0] * len(pieces.parts)) is None:
        return
    data = _whole(content)
    assert data is not None
    known = [7 if mask[i] else 0 for i in range(len(pieces.parts))]
    assert decode(pieces, known) == [c for c, k in zip(data, known, strict=True) if not k]


@given(pages())
def test_the_same_contact_bytes_under_another_head_or_context_digest_apart(
    content: bytes,
) -> None:
    pieces = split_page(content)
    if pieces is None:
        return
    one = digests(pieces, b"1\0user id field 678")
    assert 0 not in one
    assert digests(pieces, b"1\0user id field 678") == one
    other = digests(pieces, b"1\0user id field None")
    assert all(a != b for a, b in zip(one, other, strict=True))


def _client_pages(content: bytes) -> list[RawPage]:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host.startswith("auth."):
            return token_response()
        return httpx.Response(200, content=content, headers={"Content-Type": "application/json"})

    with make_client(transport=httpx.MockTransport(answer)) as client:
        return [next(iter(client.iter_raw_pages(5)))]  # the first page only


def _through_pieces(raw: RawPage) -> Page | None:
    from listrak_source.listrak.client import ListrakClient

    ListrakClient.digest(raw, "user id field 678")
    assert raw.pieces is not None
    return ListrakClient.parse_unknown(raw, [0] * len(raw.pieces.parts))


def _without_digests(page: Page) -> tuple[list[Any], list[Any]]:
    return [c._replace(digest=None) for c in page.contacts], page.rejects


@given(pages())
def test_the_client_reads_a_split_page_as_it_reads_it_whole(content: bytes) -> None:
    data = _whole(content)
    try:
        (raw,) = _client_pages(content)
    except Exception:  # refused whole: the split must not make it readable either
        assert not isinstance(data, list) or split_page(content) is None
        return
    if raw.pieces is None:
        return
    assert isinstance(data, list)
    split = _through_pieces(raw)
    if split is not None:
        assert _without_digests(split) == _without_digests(parse_page(data, raw.next_cursor))


CONTACT = b'{"emailAddress":"a@example.com","subscriptionState":"Subscribed"}'


@pytest.mark.parametrize(
    "content",
    [
        # Whitespace and the other join.
        b'{"status":200,"nextPageCursor":null,"data":[' + CONTACT + b", " + CONTACT + b"]}",
        b'{ "status" : 200 , "data" : [ ' + CONTACT + b' ] , "nextPageCursor" : null }',
        # The marker inside a nested value, with the nested object's own address.
        b'{"status":200,"nextPageCursor":null,"data":[{"emailAddress":"a@example.com",'
        b'"x":[{"k":1},{"emailAddress":"b@example.com"}]},{"emailAddress":"c@example.com"}]}',
        # A contact that opens with another key than the first one does.
        b'{"status":200,"nextPageCursor":null,"data":[' + CONTACT + b","
        b'{"subscriptionState":"Subscribed","emailAddress":"b@example.com"}]}',
        # An escaped lone surrogate, and non-ASCII as UTF-8.
        b'{"status":200,"nextPageCursor":null,"data":[{"emailAddress":"a@example.com",'
        b'"n":"\\ud800"},{"emailAddress":"\xc3\xa9@example.com"}]}',
    ],
)
def test_hostile_pages_read_alike_split_or_whole(content: bytes) -> None:
    (raw,) = _client_pages(content)
    data = _whole(content)
    assert isinstance(data, list)
    if raw.pieces is not None:
        split = _through_pieces(raw)
        if split is not None:
            assert _without_digests(split) == _without_digests(parse_page(data, None))


def test_a_page_with_data_twice_reads_as_decoded_whole() -> None:
    """JSON keeps the last of two equal keys: this page holds no contact."""
    content = b'{"status":200,"data":[' + CONTACT + b'],"nextPageCursor":null,"data":[]}'
    assert _whole(content) == []
    (raw,) = _client_pages(content)
    assert raw.size == 0


@pytest.mark.parametrize("indent", [1, None])
def test_a_page_served_again_and_again_with_a_contact_changing_ends_the_scan(
    indent: int | None,
) -> None:
    """Fresh cursors to the same two contacts forever, one of them edited between two
    servings (a date, say): the scan ends as an error after a few such pages, whether the
    pages split (compact) or are decoded whole (indented)."""
    served = 0

    def answer(request: httpx.Request) -> httpx.Response:
        nonlocal served
        if request.url.host.startswith("auth."):
            return token_response()
        served += 1
        data = [
            {"emailAddress": "a@example.com", "subscribeDate": f"2026-01-01T00:00:{served:02d}"},
            {"emailAddress": "b@example.com", "subscribeDate": "2026-01-01T00:00:00"},
        ]
        body = {"status": 200, "nextPageCursor": f"c{served}", "data": data}
        return httpx.Response(
            200, content=json.dumps(body, separators=(",", ":"), indent=indent).encode()
        )

    with make_client(transport=httpx.MockTransport(answer)) as client:
        pages = client.iter_raw_pages(5)
        with pytest.raises(ListrakProtocolError, match="already returned"):
            for _ in range(10):
                next(pages)


def test_a_nested_object_opening_with_the_first_key_before_a_bracket() -> None:
    content = (
        b'{"status":200,"nextPageCursor":null,"data":[{"emailAddress":"a@example.com",'
        b'"x":[{"k":1},{"emailAddress":"b@example.com"}],"subscriptionState":"Subscribed"}]}'
    )
    data = _whole(content)
    assert isinstance(data, list) and len(data) == 1
    (raw,) = _client_pages(content)
    assert raw.size == 1
