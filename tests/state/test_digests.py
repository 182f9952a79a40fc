"""The digest table answers as a dict would, but a digest shared by two keys answers 0."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from listrak_source.state.digests import DigestIndex

nonzero = st.integers(-(2**63), 2**63 - 1).filter(bool)
small = st.integers(1, 40)  # few values, so digests collide and slots chain


@given(
    st.lists(st.tuples(st.one_of(small, nonzero), st.one_of(small, nonzero)), max_size=3000),
    st.lists(st.one_of(small, nonzero)),
    st.integers(0, 3000),
    st.integers(1, 600),
)
def test_the_table_answers_each_digest_s_single_key_or_0(
    pairs: list[tuple[int, int]], asked: list[int], expected: int, chunk: int
) -> None:
    """Digests close together and far apart, many sharing slots, some shared by two keys,
    added a chunk at a time past several doublings of the table."""
    table = DigestIndex(expected)
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        table.add([d for d, _ in part], [c for _, c in part])
    asked += [d for d, _ in pairs]
    keys: dict[int, set[int]] = {}
    for digest, code in pairs:
        keys.setdefault(digest, set()).add(code)
    want = [next(iter(keys[d])) if len(keys.get(d, ())) == 1 else 0 for d in asked]
    assert table.find(asked) == want
    assert len(table) == len(keys)


def test_the_table_grows_past_its_first_size_and_keeps_what_it_knew() -> None:
    table = DigestIndex()
    table.add([-3, -3], [1, 2])  # a digest met with two keys recognizes neither...
    table.add(range(1, 5000), range(2, 5001))
    table.add([7, -3], [9, 1])  # ...even after the table grew, and met again
    assert table.find([1, 4999, 5000, 7, -3]) == [2, 5000, 0, 0, 0]
    assert len(table) == 5000


@given(st.lists(st.lists(st.tuples(small, small), max_size=60), max_size=8))
def test_adding_after_a_lookup_answers_as_if_everything_was_added_first(
    chunks: list[list[tuple[int, int]]],
) -> None:
    """The table sorts itself at its first lookup; rows added after that are sorted in at
    the next, and a digest met again with another key still answers 0."""
    table, keys = DigestIndex(), dict[int, set[int]]()
    for chunk in chunks:
        table.add([d for d, _ in chunk], [c for _, c in chunk])
        for digest, code in chunk:
            keys.setdefault(digest, set()).add(code)
        asked = list(range(0, 42))
        assert table.find(asked) == [
            next(iter(keys[d])) if len(keys.get(d, ())) == 1 else 0 for d in asked
        ]
        assert len(table) == len(keys)
