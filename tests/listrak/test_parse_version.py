"""A stored digest stands for what the parser made of a contact's bytes (listrak/pieces.py),
so the parser must answer the same for the same bytes until PARSE_VERSION changes.

This trips on any change to what `parse_contact` makes of a fixed corpus of awkward
contacts. If it trips, the parser now answers otherwise for some bytes: raise
PARSE_VERSION (every stored digest then stops matching, and every contact is decoded and
checked again at the next scan) and record the new fingerprint beside it here.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

from listrak_source.listrak.contacts import PARSE_VERSION, parse_contact

# PARSE_VERSION -> the fingerprint of the corpus's answers under it.
FINGERPRINTS = {1: "0284d2cf7de152c41c4a7c86bf884077c55322d69e356b0f7609a03ae0c44370"}

EMAILS = [
    "a@x.io",
    "A.B@X.IO",
    " a@x.io ",
    "é@x.io",
    "a@x",
    "no at",
    "",
    None,
    7,
    "a" * 250 + "@x.io",
]
STATES = ["Subscribed", "Unsubscribed", " Subscribed", "", "Other", None, 1]
DATES = [
    "2026-01-02T03:04:05",
    " 2026-01-02T03:04:05 ",
    "2026-01-02T03:04:05+02:00",
    "x",
    "",
    None,
    5,
]
FIELDS: list[Any] = [
    None,
    [],
    [{"segmentationFieldId": 7, "value": "u1"}],
    [{"segmentationFieldId": "7", "value": " u1 "}, {"segmentationFieldId": 8, "value": 12}],
    [{"segmentationFieldId": 7, "value": ""}, {"segmentationFieldId": 7, "value": "later"}],
    [{"segmentationFieldId": 7.5, "value": "u"}],
    [{"segmentationFieldId": 7, "value": True}],
    [{"segmentationFieldId": 7, "value": "a\x00"}],
    [{"segmentationFieldId": 7, "value": "\ud800"}],
    ["not an object"],
    {"segmentationFieldId": 7},
]
METHODS = ["Unsubscribed by user", None, 3, "\ud800"]


def corpus() -> list[dict[str, Any]]:
    contacts = []
    for email, state, date, fields, method in itertools.product(
        EMAILS, STATES, DATES, FIELDS, METHODS
    ):
        contacts.append(
            {
                "emailAddress": email,
                "subscriptionState": state,
                "subscribeDate": date,
                "unsubscribeDate": date,
                "segmentationFieldValues": fields,
                "unsubscribeMethod": method,
            }
        )
    return contacts


def fingerprint() -> str:
    answers = hashlib.sha256()
    for raw in corpus():
        # As a Subscribed scan parses: the only scan whose contacts' digests are compared.
        parsed = parse_contact(raw, scanned=True)
        answers.update(repr(parsed).encode("utf-8", "surrogatepass") + b"\n")
    return answers.hexdigest()


def test_the_parser_answers_as_its_version_says() -> None:
    assert FINGERPRINTS.get(PARSE_VERSION) == fingerprint(), (
        "parse_contact answers otherwise than PARSE_VERSION recorded: raise PARSE_VERSION "
        "and record the new fingerprint in FINGERPRINTS"
    )
