"""Checks that a request comes from our Segment destination: its bearer secret and its signature.

Segment's Webhooks destination signs `JSON.stringify(data)` with HMAC-SHA1 under the shared
secret: for a batch, only the first event. `JSON.stringify` emits no whitespace, so those are
exactly the body's bytes from after the `[` to the end of element 0. A signature over the
whole body is accepted too. Every comparison runs in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from .elements import FramingError, array_elements

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def bearer_matches(header: str | None, secrets: Sequence[bytes]) -> bool:
    """Whether `Authorization: Bearer <token>` carries one of the secrets (two during rotation)."""
    scheme, _, token = (header or "").strip().partition(" ")
    given = token.strip().encode("latin-1", "replace")
    matched = False
    # Compare against every secret, so the time taken does not say which one was close.
    for secret in secrets:
        matched |= hmac.compare_digest(secret, given)
    return matched and scheme.lower() == "bearer" and bool(given)


def signature_matches(body: bytes, header: str | None, secrets: Sequence[bytes]) -> bool:
    """Whether X-Signature is the hex HMAC-SHA1, under one of the secrets (two during a
    rotation), of element 0 of an array body or of the whole body."""
    given = (header or "").strip().lower().encode("latin-1", "replace")
    signed = [part for part in (first_element(body), body) if part is not None]
    matched = False
    # Every secret and form is tried, so the time taken says nothing about which came close.
    for secret in secrets:
        for part in signed:
            expected = hmac.new(secret, part, hashlib.sha1).hexdigest().encode("ascii")
            matched |= hmac.compare_digest(expected, given)
    return matched and bool(given)


def first_element(body: bytes) -> bytes | None:
    """The raw bytes of an array body's first element, as sent; None for any other body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    start = _skip_whitespace(text, 0)
    if not text.startswith("[", start):
        return None
    start = _skip_whitespace(text, start + 1)
    try:
        _, end = _DECODER.raw_decode(text, start)
    except RecursionError:
        return _first_span(body)
    except ValueError:
        return None
    # Offsets into the text become offsets into the bytes, so the slice is what was sent.
    low = len(text[:start].encode("utf-8"))
    return body[low : low + len(text[start:end].encode("utf-8"))]


def _first_span(body: bytes) -> bytes | None:
    """Element 0 found by its framing alone, for one nested deeper than a parser goes."""
    try:
        start, end = next(array_elements(body))
    except (FramingError, StopIteration):
        return None
    return body[start:end]


def _skip_whitespace(text: str, index: int) -> int:
    while index < len(text) and text[index] in _WHITESPACE:
        index += 1
    return index
