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
    st.integers(1, 600),
)
def test_the_table_answers_each_digest_s_single_key_or_0(
    pairs: list[tuple[int, int]], asked: list[int], chunk: int
) -> None:
    """Digests close together and far apart (in one bucket and across all), some shared by
    two keys, added a chunk at a time."""
    table = DigestIndex()
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


def test_a_bucket_outgrowing_its_room_chunk_after_chunk_keeps_every_row() -> None:
    """Rows expected for a smaller list: each bucket grows several times, between adds and
    after lookups, and answers for every row it took before."""
    table = DigestIndex(expected=160)
    spread = [(n * 0x9E3779B97F4A7C15) % 2**64 - 2**63 or 1 for n in range(1, 6001)]
    for start in range(0, 6000, 500):
        part = spread[start : start + 500]
        table.add(part, [d % 1000 + 1 for d in part])
        assert table.find(spread[: start + 500]) == [d % 1000 + 1 for d in spread[: start + 500]]
    assert len(table) == 6000
