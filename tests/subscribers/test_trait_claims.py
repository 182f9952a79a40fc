"""A list takes or removes a trait name only where no other list carries or removes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from listrak_source.config import ListSettings
from listrak_source.subscribers.trait_claims import (
    Claims,
    TraitClashError,
    refuse_clash,
    trait_clash,
)

NAMES = ("alpha", "Alpha", "beta", "gamma")


def _list(list_id: int, trait: str) -> ListSettings:
    return ListSettings(id=list_id, trait=trait)


@pytest.mark.parametrize(
    ("claims", "said"),
    [
        # The other list still removes alpha after its own rename.
        ({1: ("beta", ()), 2: ("gamma", ("alpha",))}, "list 2 still removes"),
        # The other list's messages still carry alpha (its config moved it to gamma).
        ({1: ("beta", ()), 2: ("alpha", ())}, "list 2's messages still carry"),
        # Without case: Alpha is alpha.
        ({1: ("beta", ()), 2: ("gamma", ("Alpha",))}, "list 2 still removes"),
        # A first run (nothing recorded) is held to the same.
        ({2: ("alpha", ())}, "list 2's messages still carry"),
        # So is a list the config no longer names: its contacts hold alpha in Segment.
        ({1: ("beta", ()), 3: ("alpha", ())}, "list 3's messages still carry"),
    ],
)
def test_a_list_does_not_take_a_name_another_list_carries_or_removes(
    claims: Claims, said: str
) -> None:
    problem = trait_clash(_list(1, "alpha"), claims)
    assert problem is not None and said in problem
    with pytest.raises(TraitClashError):
        refuse_clash(_list(1, "alpha"), claims)


def test_its_own_names_and_names_only_configured_elsewhere_are_no_clash() -> None:
    # It carries alpha already: nothing is taken, whatever is recorded elsewhere.
    assert trait_clash(_list(1, "alpha"), {1: ("alpha", ()), 3: ("alpha", ())}) is None
    # Back to a name it removes itself; list 2 is configured to take gamma, which this
    # rename retires: list 2's own move waits for it.
    claims: Claims = {1: ("gamma", ("alpha",)), 2: ("beta", ())}
    assert trait_clash(_list(1, "alpha"), claims) is None


def _consistent(claims: Mapping[int, tuple[str | None, tuple[str, ...]]]) -> bool:
    """No name carried by two lists, and none carried by one and removed by another."""
    for a, (carried, _) in claims.items():
        for b, (other, retired) in claims.items():
            if a == b or carried is None:
                continue
            if other is not None and carried.lower() == other.lower():
                return False
            if carried.lower() in {r.lower() for r in retired}:
                return False
    return True


def _move(claims: dict[int, Any], list_id: int, trait: str) -> None:
    """What `Traits.adopt` or `Traits.rename` records."""
    carried, retired = claims.get(list_id, (None, ()))
    gone = tuple(n for n in (*retired, carried) if n is not None and n != trait)
    claims[list_id] = (trait, gone)


_claim = st.tuples(
    st.one_of(st.none(), st.sampled_from(NAMES)),
    st.lists(st.sampled_from(NAMES), max_size=2, unique=True).map(tuple),
)


@given(
    claims=st.dictionaries(st.sampled_from([1, 2, 3, 4]), _claim, max_size=4),
    moves=st.lists(
        st.tuples(st.sampled_from([1, 2, 3, 4]), st.sampled_from(NAMES), st.booleans()),
        max_size=6,
    ),
)
def test_moves_the_rule_allows_keep_every_name_with_one_list(
    claims: dict[int, tuple[str | None, tuple[str, ...]]],
    moves: list[tuple[int, str, bool]],
) -> None:
    """Whatever the config asks, list by list (lists it no longer names included): a
    state where each name is with one list stays so, and a delivered rename frees names."""
    assume(_consistent(claims))
    for list_id, trait, delivered in moves:
        if trait_clash(_list(list_id, trait), claims) is None:
            _move(claims, list_id, trait)
        assert _consistent(claims)
        carried, _ = claims.get(list_id, (None, ()))
        if delivered and carried is not None:
            claims[list_id] = (carried, ())  # its rename delivered: the old names forgotten
