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

# A string, closed or not (the `end` group says which), a run of opening or of closing
# brackets, or a comma. Multi-byte UTF-8 never contains these ASCII bytes, so the scan works
# on the raw bytes; runs of brackets are matched against the stack as a whole, at C speed,
# so a body nested a million levels deep is scanned in a few tokens.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*(?P<end>")?|[\[{]+|[\]}]+|,', re.DOTALL)
_CLOSING = bytes.maketrans(b"[{", b"]}")
_OPENERS = b"[{"
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
    if first is None or first.group()[:1] != b"[" or body[: first.start()].strip(_WHITESPACE):
        raise FramingError("not an array")
    # The closers still owed, innermost last; the first is the array's own.
    owed = bytearray(first.group().translate(_CLOSING))
    start = first.start() + 1
    for token in tokens:
        text = _text(token)
        if text == b",":
            if len(owed) == 1:
                yield _element(body, start, token.start())
                start = token.end()
        elif text[0] in _OPENERS:
            owed += text.translate(_CLOSING)
        elif text[0] != ord('"') and _pay(owed, text):
            yield from _last(body, start, token.end() - 1, token.end())
            return
    raise FramingError("the array is never closed")


def is_one_value(body: bytes) -> bool:
    """Whether the body is one object whose strings are closed and brackets paired."""
    value = body.strip(_WHITESPACE)
    if value[:1] != b"{":
        return False
    owed = bytearray()
    try:
        for token in _TOKEN.finditer(value):
            text = _text(token)
            if text[0] in _OPENERS:
                owed += text.translate(_CLOSING)
            elif text[0] in b"]}" and _pay(owed, text):
                return token.end() == len(value)
    except FramingError:
        return False
    return False


def _text(token: re.Match[bytes]) -> bytes:
    text = token.group()
    if text[0] == ord('"') and token.group("end") is None:
        raise FramingError("a string is never closed")
    return text


def _pay(owed: bytearray, closers: bytes) -> bool:
    """Take a run of closers off the stack; True once it is empty (the outer value closed)."""
    count = len(closers)
    # Innermost first: the run must read as the stack's top, last owed first.
    if count > len(owed) or owed[len(owed) - count :][::-1] != closers:
        raise FramingError("brackets do not pair")
    del owed[len(owed) - count :]
    return not owed


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
