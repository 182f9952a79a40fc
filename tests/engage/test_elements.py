"""Finding a JSON array's elements by their framing alone, at any depth."""

from __future__ import annotations

import pytest

from listrak_source.engage.elements import FramingError, array_elements, is_one_value


@pytest.mark.parametrize(
    ("body", "elements"),
    [
        (b"[]", []),
        (b" [ ] ", []),
        (b'[[{"a":[1]}],{}]', [b'[{"a":[1]}]', b"{}"]),
        (b"[[[{}]],[[]]]", [b"[[{}]]", b"[[]]"]),
        (
            b'[{"a":"],}\\"{"},[1,[2]] , "x\\\\",null]',
            [b'{"a":"],}\\"{"}', b"[1,[2]]", b'"x\\\\"', b"null"],
        ),
        (
            '["Zo\u00eb",{"\u2603":"]"}]'.encode(),
            ['"Zo\u00eb"'.encode(), '{"\u2603":"]"}'.encode()],
        ),
        (b"[" + b"[" * 5000 + b"]" * 5000 + b"]", [b"[" * 5000 + b"]" * 5000]),
    ],
)
def test_elements_are_the_bytes_between_the_commas(body: bytes, elements: list[bytes]) -> None:
    assert [body[start:end] for start, end in array_elements(body)] == elements


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{}",
        b"x[1]",
        b"[1",
        b"[1,]",
        b"[,1]",
        b"[1]x",
        b"[}",
        b'["a]',
        b"[[1]",
        b"[[{]}]",
        b"[[]]]",
    ],
)
def test_broken_framing_is_refused(body: bytes) -> None:
    with pytest.raises(FramingError):
        list(array_elements(body))


@pytest.mark.parametrize(
    ("body", "expected"),
    [(b' {"a":[{}]} ', True), (b"{}{}", False), (b"{", False), (b'{"a}', False), (b"[]", False)],
)
def test_one_value(body: bytes, expected: bool) -> None:
    assert is_one_value(body) is expected
