"""Segment's membership rule, item by item: every JSON shape gives a Membership or an Ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from listrak_source.engage.membership import (
    Ignored,
    IgnoreReason,
    Membership,
    parse_email,
    parse_item,
    parse_timestamp,
)

from ..audiences._events import DELETE, altered, identify, track

R = IgnoreReason
WRONG_TYPES: list[object] = [None, 0, 1, 1.5, True, "", "x", [], [1], {}, {"a": 1}]


def test_a_track_entered_event_is_a_membership() -> None:
    assert parse_item(track()) == Membership(
        audience_key="first_time_shopper",
        space_id="spa_rHVb",
        email="Jane@Example.com",
        email_key="jane@example.com",
        member=True,
        timestamp=datetime(2024, 5, 6, 9, 30, 22, 829000, tzinfo=UTC),
        message_id="personas_2g5WGNhZtTET4DhSeILpE6muHnH",
    )


def test_an_identify_event_reads_traits_for_both_value_and_email() -> None:
    parsed = parse_item(identify(member=False))
    assert isinstance(parsed, Membership)
    assert (parsed.member, parsed.email, parsed.message_id) == (
        False,
        "jane@example.com",
        "personas_identify_1",
    )


def test_a_journey_step_counts_like_an_audience() -> None:
    event = altered(track(), "context.personas.computation_class", "journey_step")
    assert isinstance(parse_item(event), Membership)


def test_the_event_name_is_not_consulted() -> None:
    # An "Audience Entered" that says false is an exit: the value decides, not the name.
    parsed = parse_item(altered(track(member=False), "event", "Audience Entered"))
    assert isinstance(parsed, Membership)
    assert parsed.member is False
    assert isinstance(parse_item(altered(track(), "event", DELETE)), Membership)


def test_track_ignores_traits_and_identify_ignores_properties() -> None:
    # Each form has one place for the value: the other place is not a fallback.
    track_in_traits = altered(
        altered(track(), "properties", {}), "traits", {"first_time_shopper": True}
    )
    assert parse_item(track_in_traits) == Ignored(R.VALUE_NOT_BOOLEAN)
    identify_in_props = altered(identify(), "traits", {"email": "a@b.co"})
    identify_in_props["properties"] = {"first_time_shopper": True}
    assert parse_item(identify_in_props) == Ignored(R.VALUE_NOT_BOOLEAN)


def test_email_comes_from_context_traits_on_track_and_traits_on_identify() -> None:
    track_with_traits_email = altered(track(), "context.traits", {})
    track_with_traits_email["traits"] = {"email": "a@b.co"}
    assert parse_item(track_with_traits_email) == Ignored(R.MISSING_EMAIL)
    identify_with_context_email = altered(identify(), "traits.email", DELETE)
    identify_with_context_email["context"]["traits"] = {"email": "a@b.co"}
    assert parse_item(identify_with_context_email) == Ignored(R.MISSING_EMAIL)


def test_the_space_id_is_optional() -> None:
    for value in (DELETE, None, 7, "", "x" * 256):
        parsed = parse_item(altered(track(), "context.personas.space_id", value))
        assert isinstance(parsed, Membership)
        assert parsed.space_id is None


IGNORED_CASES: list[tuple[str, dict[str, Any], IgnoreReason]] = [
    # not a membership event
    ("type page", altered(track(), "type", "page"), R.NOT_A_MEMBERSHIP_EVENT),
    ("type missing", altered(track(), "type", DELETE), R.NOT_A_MEMBERSHIP_EVENT),
    ("type Track", altered(track(), "type", "Track"), R.NOT_A_MEMBERSHIP_EVENT),
    ("no context", altered(track(), "context", DELETE), R.NOT_A_MEMBERSHIP_EVENT),
    ("no personas", altered(track(), "context.personas", DELETE), R.NOT_A_MEMBERSHIP_EVENT),
    (
        "computed trait",
        altered(track(), "context.personas.computation_class", "trait"),
        R.NOT_A_MEMBERSHIP_EVENT,
    ),
    (
        "class missing",
        altered(track(), "context.personas.computation_class", DELETE),
        R.NOT_A_MEMBERSHIP_EVENT,
    ),
    # the key
    (
        "key missing",
        altered(track(), "context.personas.computation_key", DELETE),
        R.NO_COMPUTATION_KEY,
    ),
    ("key empty", altered(track(), "context.personas.computation_key", ""), R.NO_COMPUTATION_KEY),
    (
        "key NUL",
        altered(track(), "context.personas.computation_key", "a\x00b"),
        R.NO_COMPUTATION_KEY,
    ),
    # the value: only a JSON boolean is a membership
    ('value "true"', track(member="true"), R.VALUE_NOT_BOOLEAN),
    ("value 1", track(member=1), R.VALUE_NOT_BOOLEAN),
    ("value 0", track(member=0), R.VALUE_NOT_BOOLEAN),
    ("value null", track(member=None), R.VALUE_NOT_BOOLEAN),
    ("value object", track(member={"v": True}), R.VALUE_NOT_BOOLEAN),
    (
        "value absent",
        altered(track(), "properties.first_time_shopper", DELETE),
        R.VALUE_NOT_BOOLEAN,
    ),
    ("identify value 1", identify(member=1), R.VALUE_NOT_BOOLEAN),
    ("identify value null", identify(member=None), R.VALUE_NOT_BOOLEAN),
    ("properties missing", altered(track(), "properties", DELETE), R.VALUE_NOT_BOOLEAN),
    ("traits missing", altered(identify(), "traits", DELETE), R.VALUE_NOT_BOOLEAN),
    # the email
    ("email missing", altered(track(), "context.traits.email", DELETE), R.MISSING_EMAIL),
    ("email null", track(email=None), R.MISSING_EMAIL),
    ("email blank", track(email="   "), R.MISSING_EMAIL),
    ("context traits missing", altered(track(), "context.traits", DELETE), R.MISSING_EMAIL),
    ("identify email missing", altered(identify(), "traits.email", DELETE), R.MISSING_EMAIL),
    ("email number", track(email=42), R.INVALID_EMAIL),
    ("email list", track(email=["a@b.co"]), R.INVALID_EMAIL),
    ("email no at", track(email="jane.example.com"), R.INVALID_EMAIL),
    ("email no local part", track(email="@example.com"), R.INVALID_EMAIL),
    ("email no domain", track(email="jane@"), R.INVALID_EMAIL),
    ("email inner space", track(email="jane doe@example.com"), R.INVALID_EMAIL),
    ("email NUL", track(email="jane\x00@example.com"), R.INVALID_EMAIL),
    ("email tab", track(email="ja\tne@example.com"), R.INVALID_EMAIL),
    ("email longer lower-cased", track(email="\u0130" * 130 + "@example.com"), R.INVALID_EMAIL),
    ("email surrogate", track(email="ja\ud800ne@example.com"), R.INVALID_EMAIL),
    ("email too long", track(email="a" * 243 + "@example.com"), R.INVALID_EMAIL),
    # the message id
    ("messageId missing", altered(track(), "messageId", DELETE), R.MISSING_MESSAGE_ID),
    ("messageId null", altered(track(), "messageId", None), R.MISSING_MESSAGE_ID),
    ("messageId empty", altered(track(), "messageId", ""), R.MISSING_MESSAGE_ID),
    ("messageId number", altered(track(), "messageId", 12), R.BAD_MESSAGE_ID),
    ("messageId NUL", altered(track(), "messageId", "m\x00"), R.BAD_MESSAGE_ID),
    ("messageId too long", altered(track(), "messageId", "m" * 256), R.BAD_MESSAGE_ID),
    # the timestamp: no fallback to receivedAt
    ("timestamp missing", altered(track(), "timestamp", DELETE), R.BAD_TIMESTAMP),
    ("timestamp null", altered(track(), "timestamp", None), R.BAD_TIMESTAMP),
    ("timestamp epoch number", altered(track(), "timestamp", 1714987822), R.BAD_TIMESTAMP),
    ("timestamp naive", altered(track(), "timestamp", "2024-05-06T09:30:22"), R.BAD_TIMESTAMP),
    ("timestamp date only", altered(track(), "timestamp", "2024-05-06"), R.BAD_TIMESTAMP),
    ("timestamp words", altered(track(), "timestamp", "yesterday"), R.BAD_TIMESTAMP),
    ("timestamp month 13", altered(track(), "timestamp", "2024-13-06T09:30:22Z"), R.BAD_TIMESTAMP),
]


@pytest.mark.parametrize(
    ("event", "reason"), [c[1:] for c in IGNORED_CASES], ids=[c[0] for c in IGNORED_CASES]
)
def test_unusable_events_are_ignored_with_their_reason(
    event: dict[str, Any], reason: IgnoreReason
) -> None:
    assert parse_item(event) == Ignored(reason)


@pytest.mark.parametrize("value", WRONG_TYPES)
def test_an_item_that_is_not_an_object_is_ignored(value: object) -> None:
    expected = R.NOT_A_MEMBERSHIP_EVENT if isinstance(value, dict) else R.NOT_AN_OBJECT
    assert parse_item(value) == Ignored(expected)


FIELD_PATHS = [
    "type",
    "context",
    "context.personas",
    "context.personas.computation_class",
    "context.personas.computation_key",
    "context.personas.space_id",
    "context.traits",
    "context.traits.email",
    "properties",
    "properties.first_time_shopper",
    "messageId",
    "timestamp",
]


@pytest.mark.parametrize("path", FIELD_PATHS)
@pytest.mark.parametrize("value", WRONG_TYPES)
def test_any_json_type_in_any_field_gives_an_answer(path: str, value: object) -> None:
    parsed = parse_item(altered(track(), path, value))
    assert isinstance(parsed, Membership | Ignored)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=12,
)


@given(
    st.dictionaries(
        st.sampled_from(["type", "context", "properties", "traits", "messageId", "timestamp"]),
        json_values,
    )
)
def test_arbitrary_documents_never_raise(document: dict[str, Any]) -> None:
    assert isinstance(parse_item(document), Membership | Ignored)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2024-05-06T09:30:22.829Z", datetime(2024, 5, 6, 9, 30, 22, 829000, tzinfo=UTC)),
        ("2024-05-06T11:30:22+02:00", datetime(2024, 5, 6, 9, 30, 22, tzinfo=UTC)),
        ("2024-05-06T09:30:22.123456789Z", datetime(2024, 5, 6, 9, 30, 22, 123456, tzinfo=UTC)),
        ("2024-05-06 04:30:22-05:00", datetime(2024, 5, 6, 9, 30, 22, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(raw: str, expected: datetime) -> None:
    parsed = parse_timestamp(raw)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


def test_a_timestamp_that_cannot_be_moved_to_utc_is_refused() -> None:
    assert parse_timestamp("0001-01-01T00:00:00+05:00") is None
    assert parse_timestamp("9999-12-31T23:59:59-05:00") is None
    assert parse_timestamp("2024-05-06T09:30:22Z" + " " * 60) is None
    far = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=1)))
    assert parse_timestamp(far.isoformat()) == far.astimezone(UTC)


def test_email_is_trimmed_and_keyed_in_lower_case() -> None:
    parsed = parse_item(track(email="  Jane.Doe@Example.COM \n"))
    assert isinstance(parsed, Membership)
    assert (parsed.email, parsed.email_key) == ("Jane.Doe@Example.COM", "jane.doe@example.com")
    assert parse_email("a" * 242 + "@example.com") == "a" * 242 + "@example.com"
