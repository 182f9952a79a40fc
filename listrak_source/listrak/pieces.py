"""A page of contacts split into each contact's bytes, without decoding them.

A re-sync meets mostly contacts that have not changed since the last run, and Listrak
sends such a contact as the bytes it sent then. A digest of those bytes, stored with the
contact's row, recognizes it without decoding or checking it (state/digests.py).

Splitting needs no JSON parser. Every contact object opens with the same first key
(Listrak sends `emailAddress` first), and `},{"emailAddress":` cannot occur inside a JSON
string, where every quote is escaped. It can occur inside a contact's nested values, and
a contact may open with another key: either way a piece is then not one JSON object, which
decoding it finds, and a piece recognized by its digest has the bytes of one that decoded
whole when the digest was stored. A page that does not split cleanly is decoded whole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import orjson

from ..records import Pieces

# What may stand before "data" in the envelope: keys with scalar values only, so the
# array found is the envelope's own, not one nested in another of its values.
_STRING = rb'"(?:[^"\\]|\\.)*"'
_SCALAR = rb"(?:" + _STRING + rb"|-?[0-9][0-9.eE+-]*|true|false|null)"
_PREFIX = re.compile(rb"\s*\{(?:\s*" + _STRING + rb"\s*:\s*" + _SCALAR + rb"\s*,)*\s*", re.S)
_DATA = re.compile(rb'"data"\s*:\s*\[\s*')
# A contact's opening brace and first key.
_HEAD = re.compile(rb"\{\s*" + _STRING + rb"\s*:\s*", re.S)
_CLOSE = re.compile(r"\s*\]")
# What ends one contact and starts the next: a brace, a comma and whatever spacing.
_JOIN = re.compile(rb"\}\s*,\s*")


def split_page(content: bytes) -> Pieces | None:
    """The page's contacts' bytes, or None when the page is to be decoded whole."""
    found = _DATA.search(content)
    if found is None or not _PREFIX.fullmatch(content, 0, found.start()):
        return None
    head = _HEAD.match(content, found.end())
    if head is None:
        return None  # no contact, or not objects: nothing to gain
    opening = head.group()
    body = content[head.end() :]
    parts = _split(body, opening)
    last = _last(opening, parts[-1])
    if last is None:
        return None
    parts[-1], rest = last
    if b'"data"' in rest:
        return None  # a second `data` key, which decoding whole would take instead
    envelope = content[: found.start()] + b'"data":[]' + rest
    # A split inside a contact's nested values can leave an envelope that is not one.
    decoded = _object(envelope)
    if decoded is None or decoded.get("data") != []:
        return None
    return Pieces(opening, parts, envelope)


def _split(body: bytes, opening: bytes) -> list[bytes]:
    """Split where one contact ends and the next opens as the first did; the spacing
    between them is taken from the first two, as a serializer spaces them all alike."""
    first = re.search(_JOIN.pattern + re.escape(opening), body)
    return body.split(first.group()) if first is not None else [body]


def _last(opening: bytes, tail: bytes) -> tuple[bytes, bytes] | None:
    """The last contact's part, and what follows the array; decoding only that contact
    finds where it ends, whatever its values hold."""
    try:
        text = (opening + tail).decode()
        _, end = json.JSONDecoder().raw_decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    close = _CLOSE.match(text, end)
    if close is None:
        return None
    after = text[close.end() :].encode()
    size = len(tail) - len(text[end:].encode())  # the contact's bytes after the head
    if size < 1 or tail[size - 1 : size] != b"}":
        return None
    return tail[: size - 1], after


def digests(pieces: Pieces, context: bytes) -> list[int]:
    """A signed 64-bit digest of each contact's bytes, never 0 (an empty slot to the
    tables that hold them). `context` names what else decides what a contact becomes (the
    parser, the list's settings), so a change there makes every digest new."""
    import numpy as np  # noqa: PLC0415 - loads with the first scan, not with the client

    material = hashlib.blake2b(context + b"\0" + pieces.head, digest_size=32).digest()
    # Each contact's hash starts from a copy of one keyed hash that holds the key's block:
    # the same digest as keying afresh, without parsing the key and size a contact. The
    # loop only hashes; the page's digests become integers together, in numpy (about 0.75
    # against 0.95 µs a contact when each was converted on its own).
    fresh = hashlib.blake2b(digest_size=8, key=material).copy
    out: list[bytes] = []
    for part in pieces.parts:
        keyed = fresh()
        keyed.update(part)
        out.append(keyed.digest())
    codes = np.frombuffer(b"".join(out), "<i8")
    signed: list[int] = np.where(codes == 0, 1, codes).tolist()
    return signed


def contact_json(pieces: Pieces, index: int) -> bytes:
    """One contact's JSON, as sent."""
    return pieces.head + pieces.parts[index] + b"}"


def decode(pieces: Pieces, known: Sequence[int]) -> list[dict[str, Any]] | None:
    """The contacts whose `known` is 0, decoded one by one; None when one is not a single
    JSON object (the page did not split where its contacts meet): decode it whole."""
    head, out = pieces.head, []
    for part, code in zip(pieces.parts, known, strict=True):
        if code:
            continue
        contact = _object(head + part + b"}")
        if contact is None:
            return None
        out.append(contact)
    return out


def _object(text: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        # What orjson refuses but JSON allows (an escaped lone surrogate) is the parser's
        # to judge, as when a page is decoded whole.
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):
            return None
    return value if type(value) is dict else None
