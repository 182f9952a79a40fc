"""Coalescing: one desired value per target, and the same one whatever the arrival order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from listrak_source.engage.coalesce import fold, rank, supersedes
from listrak_source.engage.mapping import AudienceMapping, Mapped, Target
from listrak_source.engage.membership import Membership

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
VIP = AudienceMapping("vip", list_id=1, field_id=10)
CHURN = AudienceMapping("churn", list_id=1, field_id=11)
OTHER_LIST = AudienceMapping("vip", list_id=2, field_id=10, space_id="spa_b")
# Two spellings of one address: one target, since state is keyed by the lower-cased form.
EMAILS = ["Jane@Example.com", "jane@example.com", "bob@example.com"]


def event(
    message_id: str,
    seconds: int,
    member: bool = True,
    email: str = "jane@example.com",
    mapping: AudienceMapping = VIP,
) -> Mapped:
    membership = Membership(
        audience_key=mapping.key,
        space_id=mapping.space_id,
        email=email,
        email_key=email.lower(),
        member=member,
        timestamp=T0 + timedelta(seconds=seconds),
        message_id=message_id,
    )
    return Mapped(membership, mapping)


def test_a_later_timestamp_wins_in_either_order() -> None:
    entered, exited = event("b", 1, True), event("a", 2, False)
    for stream in ([entered, exited], [exited, entered]):
        assert fold(stream) == {Target(1, 10, "jane@example.com"): exited}


def test_equal_timestamps_are_decided_by_the_larger_message_id() -> None:
    low, high = event("m-1", 5, True), event("m-2", 5, False)
    assert fold([high, low])[high.target] is high
    assert fold([low, high])[high.target] is high
    assert rank(high.membership) > rank(low.membership)


def test_a_copy_does_not_replace_the_value_it_equals() -> None:
    first = event("m", 1)
    assert not supersedes(event("m", 1).membership, first.membership)
    assert supersedes(first.membership, None)


def test_one_value_per_list_field_and_email_key() -> None:
    items = [
        event("1", 1, email="Jane@Example.com"),
        event("2", 2, email="jane@example.com"),
        event("3", 1, mapping=CHURN),
        event("4", 1, mapping=OTHER_LIST),
        event("5", 1, email="bob@example.com"),
    ]
    assert sorted(fold(items)) == [
        Target(1, 10, "bob@example.com"),
        Target(1, 10, "jane@example.com"),
        Target(1, 11, "jane@example.com"),
        Target(2, 10, "jane@example.com"),
    ]


def test_a_thousand_events_for_one_target_become_one_write() -> None:
    items = [event(f"m{i:04}", i % 7, member=i % 2 == 0) for i in range(1000)]
    newest = fold(items)
    assert list(newest.values()) == [max(items, key=lambda m: rank(m.membership))]


def test_folding_into_a_state_leaves_that_state_unchanged() -> None:
    state = fold([event("a", 1)])
    before = dict(state)
    after = fold([event("b", 2)], into=state)
    assert state == before
    assert after[Target(1, 10, "jane@example.com")].membership.message_id == "b"


@st.composite
def streams(draw: st.DrawFn) -> tuple[list[Mapped], list[Mapped]]:
    """A stream of distinct events, and one arrival of it: shuffled, with copies."""
    ids = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=40, unique=True))
    stream = [
        event(
            message_id,
            # Few distinct timestamps, so ties are common and the message id must decide.
            draw(st.integers(0, 4)),
            draw(st.booleans()),
            draw(st.sampled_from(EMAILS)),
            draw(st.sampled_from([VIP, CHURN, OTHER_LIST])),
        )
        for message_id in ids
    ]
    copies = draw(st.lists(st.sampled_from(stream), max_size=20))
    return stream, draw(st.permutations(stream + copies))


def in_order(stream: list[Mapped]) -> dict[Target, Mapped]:
    """The desired state: each event applied in (timestamp, messageId) order replaces the last."""
    state: dict[Target, Mapped] = {}
    for item in sorted(stream, key=lambda m: (m.membership.timestamp, m.membership.message_id)):
        state[item.target] = item
    return state


@given(streams())
def test_any_arrival_order_and_any_copies_end_in_the_ordered_state(
    drawn: tuple[list[Mapped], list[Mapped]],
) -> None:
    stream, arrival = drawn
    assert fold(arrival) == in_order(stream)


@given(streams(), st.integers(1, 10))
def test_folding_batch_by_batch_ends_in_the_same_state(
    drawn: tuple[list[Mapped], list[Mapped]], size: int
) -> None:
    stream, arrival = drawn
    state: dict[Target, Mapped] = {}
    for start in range(0, len(arrival), size):
        state = fold(arrival[start : start + size], into=state)
    assert state == in_order(stream)
