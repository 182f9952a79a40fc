"""Parsing contacts defensively: any JSON value in any field gives a Contact or a Reject."""

from __future__ import annotations

from listrak_source.listrak.contacts import parse_contact
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
