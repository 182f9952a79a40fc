"""The repeat watch: how many pages in a row held only contacts the scan returned before."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from listrak_source.listrak.repeats import _BITS, RepeatWatch
from listrak_source.records import RawPage

addresses = st.integers(0, 60).map(lambda n: f"c{n}@x.io")


@given(st.lists(st.lists(addresses, max_size=30), max_size=10))
def test_the_streak_counts_pages_whose_every_bit_was_set_before(pages: list[list[str]]) -> None:
    """As a set of the keys' bits would count it: a page with any key whose bit no earlier
    page (nor an earlier key of its own) set starts again at 0; an empty page counts
    nothing."""
    watch, bits, streak = RepeatWatch(), set[int](), 0
    for keys in pages:
        data = [{"emailAddress": key} for key in keys]
        page_bits = {hash(key) & (_BITS - 1) for key in keys}
        if keys:
            streak = 0 if page_bits - bits else streak + 1
        bits |= page_bits
        assert watch.page(RawPage(data, None)) == streak


def test_a_page_holding_one_new_contact_among_repeats_is_no_repeat() -> None:
    watch = RepeatWatch()
    first = [{"emailAddress": f"c{n}@x.io"} for n in range(5000)]
    assert watch.page(RawPage(first, None)) == 0
    assert watch.page(RawPage(first[::-1], None)) == 1
    # One whose bit none of them set (str's hash is salted per process).
    taken = {hash(c["emailAddress"]) & (_BITS - 1) for c in first}
    new = next(k for n in range(5000, 10_000) if hash(k := f"c{n}@x.io") & (_BITS - 1) not in taken)
    assert watch.page(RawPage([*first, {"emailAddress": new}], None)) == 0
    assert watch.page(RawPage(first[:1] * 3, None)) == 1
