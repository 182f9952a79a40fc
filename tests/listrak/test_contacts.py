"""Parsing contacts defensively: any JSON value in any field gives a Contact or a Reject."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from listrak_source.listrak.contacts import parse_contact, storable
from listrak_source.records import Contact, Reject

BAD_FIELDS = [{"segmentationFieldId": "seventy-seven", "value": "x"}]


def test_an_unsubscribe_is_a_fact_even_when_its_profile_fields_are_unreadable() -> None:
    parsed = parse_contact(
        {
            "emailAddress": "a@x.io",
            "subscriptionState": "Unsubscribed",
            "segmentationFieldValues": BAD_FIELDS,
        }
    )
    assert parsed == Contact("a@x.io", False, {})


def test_a_subscriber_with_unreadable_fields_is_refused_with_its_email() -> None:
    parsed = parse_contact({"emailAddress": "a@x.io", "segmentationFieldValues": BAD_FIELDS})
    assert isinstance(parsed, Reject) and parsed.email == "a@x.io"


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = (
    "emailAddress",
    "subscriptionState",
    "subscribeDate",
    "resubscribeDate",
    "unsubscribeDate",
    "unsubscribeMethod",
    "segmentationFieldValues",
)


@given(st.dictionaries(st.sampled_from(KEYS), JSON), st.sampled_from(["a@x.io", None]))
def test_any_json_in_any_field_gives_a_contact_or_a_reject(raw: dict, email: str | None) -> None:
    if email is not None:
        raw.setdefault("emailAddress", email)
    parsed = parse_contact(raw)
    assert isinstance(parsed, Contact | Reject)
    if isinstance(parsed, Contact):
        assert storable(parsed.email) and all(storable(v) for v in parsed.fields.values())
        assert parsed.unsubscribe_method is None or storable(parsed.unsubscribe_method)
    else:
        assert len(parsed.reason) < 120 and (parsed.email is None or storable(parsed.email))


def test_field_values_and_ids_are_read_defensively() -> None:
    def fields(*items: object) -> Contact | Reject:
        return parse_contact({"emailAddress": "a@x.io", "segmentationFieldValues": list(items)})

    assert fields({"segmentationFieldId": " 678 ", "value": 12}) == Contact(
        "a@x.io", True, {678: "12"}
    )
    for bad in (
        {"segmentationFieldId": "²"},
        {"segmentationFieldId": 678, "value": {"a": 1}},
        {"segmentationFieldId": 678, "value": True},
        {"segmentationFieldId": 678.5},
    ):
        assert isinstance(fields(bad), Reject), bad
