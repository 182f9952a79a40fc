"""The set of keys a scan has seen: exact for what it holds, flat in memory as it grows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listrak_source.state.seen import SeenKeys


def test_it_holds_what_was_added_and_nothing_else() -> None:
    seen = SeenKeys()
    keys = [f"c{n}@x.io" for n in range(5000)]
    seen.update(keys[:3000])
    assert len(seen) == 3000
    assert seen.present(seen.codes(keys)) == [True] * 3000 + [False] * 2000
    assert "c1@x.io" in seen and "nobody@x.io" not in seen and 1 not in seen


def test_adding_a_key_again_counts_it_once() -> None:
    seen = SeenKeys(expected=10)
    seen.update(["a@x.io", "a@x.io", "b@x.io"])
    seen.update(["b@x.io"])
    assert len(seen) == 2


def test_it_grows_past_its_expected_size_and_keeps_every_key() -> None:
    seen = SeenKeys(expected=1)
    keys = [f"c{n}@x.io" for n in range(20_000)]
    seen.update(keys)
    assert len(seen) == 20_000
    assert all(seen.present(seen.codes(keys)))


def test_with_a_fixed_hash_seed_it_uses_a_hash_keyed_per_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    one, other = SeenKeys(), SeenKeys()
    one.update(["a@x.io"])
    assert "a@x.io" in one and "b@x.io" not in one
    # Each set draws its own key, so a pair of addresses that collide in one run need not
    # collide in the next.
    assert one.codes(["a@x.io"]) != other.codes(["a@x.io"])


codes = st.one_of(st.integers(1, 3000), st.integers(-(2**63), 2**63 - 1).filter(bool))


@given(st.lists(st.lists(codes, max_size=700), max_size=12), st.integers(0, 2000))
def test_each_batch_is_answered_as_a_set_would_answer_it_in_order(
    batches: list[list[int]], expected: int
) -> None:
    """Hashes that share home slots and chain, repeated within a batch and across batches,
    inserted past several doublings: `insert` says new exactly for the first time a hash is
    met, `present` exactly for what was inserted."""
    seen, model = SeenKeys(expected), set[int]()
    for batch in batches:
        assert seen.present(batch) == [code in model for code in batch]
        new = []
        for code in batch:
            new.append(code not in model)
            model.add(code)
        assert seen.insert(batch) == new
        assert len(seen) == len(model)
    assert seen.present(sorted(model)) == [True] * len(model)
