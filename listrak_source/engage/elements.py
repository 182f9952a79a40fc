"""Where the top-level values of a JSON body start and end, found without decoding them.

A parser refuses a value nested deeper than it allows (orjson stops at 1,024 levels, the
standard library near its recursion limit), which would fail every event of a batch for one
odd item. This scanner only follows strings and brackets, with a list for a stack, so any
depth costs memory in proportion to the body and nothing more; each value can then be
decoded, or refused, on its own. It checks the framing only (strings closed, brackets
paired, values separated by commas): what lies between brackets is left to the decoder.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

# A string, closed or not (the `end` group says which), or one structural character.
# Multi-byte UTF-8 never contains these ASCII bytes, so the scan works on the raw bytes.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?P<end>")?|[\[\]{},]', re.DOTALL)
_OPENERS = {ord("["): ord("]"), ord("{"): ord("}")}
_CLOSERS = frozenset(_OPENERS.values())
_WHITESPACE = b" \t\n\r"

Span = tuple[int, int]


class FramingError(ValueError):
    """The body's strings or brackets do not make JSON values."""


def array_elements(body: bytes) -> Iterator[Span]:
    """Each element of an array body, as (start, end) without surrounding whitespace.

    Spans come as they are found, so a caller that needs only the first reads no further;
    FramingError is raised where the framing breaks, or at once if the body is no array.
    """
    tokens = _TOKEN.finditer(body)
    first = next(tokens, None)
    if first is None or first.group() != b"[" or body[: first.start()].strip(_WHITESPACE):
        raise FramingError("not an array")
    stack, start = [ord("]")], first.end()
    for token in tokens:
        kind = _kind(token)
        if kind == ord(",") and len(stack) == 1:
            yield _element(body, start, token.start())
            start = token.end()
        elif kind in _OPENERS:
            stack.append(_OPENERS[kind])
        elif kind in _CLOSERS:
            if stack.pop() != kind:
                raise FramingError("brackets do not pair")
            if not stack:
                yield from _last(body, start, token.start(), token.end())
                return
    raise FramingError("the array is never closed")


def is_one_value(body: bytes) -> bool:
    """Whether the body is one object whose strings are closed and brackets paired."""
    value = body.strip(_WHITESPACE)
    if value[:1] != b"{":
        return False
    stack: list[int] = []
    try:
        for token in _TOKEN.finditer(value):
            kind = _kind(token)
            if kind in _OPENERS:
                stack.append(_OPENERS[kind])
            elif kind in _CLOSERS and (not stack or stack.pop() != kind):
                return False
            elif kind in _CLOSERS and not stack:
                return token.end() == len(value)
    except FramingError:
        return False
    return False


def _kind(token: re.Match[bytes]) -> int:
    text = token.group()
    if text[0] == ord('"') and token.group("end") is None:
        raise FramingError("a string is never closed")
    return text[0]


def _element(body: bytes, start: int, end: int) -> Span:
    while start < end and body[start] in _WHITESPACE:
        start += 1
    while end > start and body[end - 1] in _WHITESPACE:
        end -= 1
    if start == end:
        raise FramingError("an empty element")
    return start, end


def _last(body: bytes, start: int, end: int, closed_at: int) -> Iterator[Span]:
    if body[closed_at:].strip(_WHITESPACE):
        raise FramingError("something follows the array")
    # `[]` and `[ ]` have no elements; `[1,]` has an empty one.
    if body[start:end].strip(_WHITESPACE) or body[start - 1] == ord(","):
        yield _element(body, start, end)
