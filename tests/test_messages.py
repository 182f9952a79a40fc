"""Message building: the identify Segment receives for each kind of change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from listrak_source.listrak.contacts import parse_contact
from listrak_source.messages import (
    MessageIds,
    identify_message,
    oversize_reason,
    uuid4_strings,
)
from listrak_source.records import Contact, Pending, Reject

WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def row(subscribed: bool, user_id: str | None = None) -> Pending:
    return Pending(1001, "ann@x.io", "Ann@x.io", subscribed, user_id, "mid-1", WHEN)


def test_subscribed_identify_has_true_trait_and_user_id() -> None:
    assert identify_message(row(True, "crm-1"), "Listrak_list_1001") == {
        "type": "identify",
        "messageId": "mid-1",
        "anonymousId": "Ann@x.io",
        "userId": "crm-1",
        "traits": {"email": "Ann@x.io", "Listrak_list_1001": True},
        "timestamp": "2026-11-23T08:00:00.000+00:00",
    }


def test_unsubscribed_identify_sends_null_trait_without_user_id() -> None:
    message = identify_message(row(False), "Listrak_list_1001")
    assert message["traits"] == {"email": "Ann@x.io", "Listrak_list_1001": None}
    assert "userId" not in message


def test_message_ids_are_distinct_version_4_uuids() -> None:
    ids = MessageIds()
    made = [ids() for _ in range(5000)]
    assert len(set(made)) == 5000
    for text in made[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


@given(st.lists(st.binary(min_size=16, max_size=16), max_size=8))
def test_each_16_bytes_become_the_version_4_uuid_the_standard_library_makes(
    draws: list[bytes],
) -> None:
    made = uuid4_strings(b"".join(draws))
    assert made == [str(uuid.UUID(bytes=b, version=4)) for b in draws]


def test_a_renamed_list_also_removes_its_old_traits() -> None:
    message = identify_message(row(True), "new_1001", ["Listrak_list_1001", "old_1001"])
    assert message["traits"] == {
        "email": "Ann@x.io",
        "new_1001": True,
        "Listrak_list_1001": None,
        "old_1001": None,
    }
    assert identify_message(row(False), "new_1001", ["old_1001"])["traits"] == {
        "email": "Ann@x.io",
        "new_1001": None,
        "old_1001": None,
    }


def test_oversize_reason() -> None:
    assert oversize_reason("a@x.io", "u" * 100, "t") is None
    reason = oversize_reason("a@x.io", "u" * 40000, "t")
    assert reason is not None and "32768" in reason


def test_parse_contact_accepts_nulls_and_trims() -> None:
    parsed = parse_contact(
        {
            "emailAddress": " Ann@x.io ",
            "subscriptionState": None,
            "segmentationFieldValues": None,
            "subscribeDate": "garbage",
        },
        scanned=True,
    )
    assert parsed == Contact("Ann@x.io", True, {})


def test_parse_contact_rejects_bad_input() -> None:
    cases = [
        ({"subscriptionState": "Subscribed"}, "missing emailAddress"),
        ({"emailAddress": "not-an-email"}, "invalid emailAddress"),
        ({"emailAddress": "a@x.io", "subscriptionState": "Weird"}, "unknown subscriptionState"),
        ({"emailAddress": 5}, "emailAddress is int"),
        (
            {"emailAddress": "a@x.io", "segmentationFieldValues": [{"segmentationFieldId": "x"}]},
            "segmentationFieldId",
        ),
        ("just a string", "contact is str"),
    ]
    for raw, reason in cases:
        parsed = parse_contact(raw, scanned=True)
        assert isinstance(parsed, Reject), raw
        assert reason in parsed.reason


def test_parse_contact_accepts_string_field_ids_and_numbers() -> None:
    parsed = parse_contact(
        {
            "emailAddress": "a@x.io",
            "segmentationFieldValues": [{"segmentationFieldId": "678", "value": 12345}],
        },
        scanned=True,
    )
    assert parsed == Contact("a@x.io", True, {678: "12345"})
