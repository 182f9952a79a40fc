"""Parsing contacts defensively: any JSON value in any field gives a Contact or a Reject."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from listrak_source.listrak.contacts import checked_contact, parse_contact, storable
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
    raw = {"emailAddress": "a@x.io", "segmentationFieldValues": BAD_FIELDS}
    parsed = parse_contact(raw, scanned=True)
    assert isinstance(parsed, Reject) and parsed.email == "a@x.io"
    assert "segmentationFieldId" in parsed.reason


def test_a_contact_without_a_state_is_in_the_state_its_scan_asked_for() -> None:
    """Listrak chose it by that state; read alone, it is refused, with its address, so that
    a subscriber is kept and the refusal shown."""
    for raw in ({"emailAddress": "a@x.io"}, {"emailAddress": "a@x.io", "subscriptionState": " "}):
        assert parse_contact(raw, scanned=True) == Contact("a@x.io", True, {})
        assert parse_contact(raw, scanned=False) == Contact("a@x.io", False, {})
        alone = parse_contact(raw)
        assert alone == Reject(reason="subscriptionState is missing", email="a@x.io")
    stated = {"emailAddress": "a@x.io", "subscriptionState": "Subscribed"}
    assert parse_contact(stated, scanned=False) == parse_contact(stated) == Contact("a@x.io", True)


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
        raw = {"emailAddress": "a@x.io", "segmentationFieldValues": list(items)}
        return parse_contact(raw, scanned=True)

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


# Mostly addresses the shortcut takes, so the contacts' other fields decide.
_EMAILS = st.one_of(
    st.sampled_from(["a@x.io", "User01@Example.COM"]),
    st.sampled_from(["a@x.io", "User01@Example.COM"]),
    st.sampled_from(
        [
            "a@x.io",
            "User01@Example.COM",
            " a@x.io",
            "a@x.io\n",
            "a@xio",
            "a@@x.io",
            "a b@x.io",
            "a\x00@x.io",
            "\ud800@x.io",
            "İ@x.io",
            "é@x.io",
            "a" * 249 + "@x.io",
            "a" * 250 + "@x.io",
            "İ" * 126 + "@x.io",
            "",
        ]
    ),
    st.text(max_size=12),
    st.none(),
    st.integers(),
)
_TEXTS = st.one_of(
    st.sampled_from(["v", " v ", "", "  ", "\x00", "a\x00", "\ud800", "é", "12"]),
    st.text(max_size=6),
)
_IDS = st.one_of(st.sampled_from([7, 8]), st.sampled_from([True, "7", " 8 ", "x", 7.0, None]))
_VALUES = st.one_of(_TEXTS, _TEXTS, st.none(), st.integers(), st.floats(), st.booleans(), JSON)
_ITEMS = st.one_of(
    st.fixed_dictionaries({"segmentationFieldId": _IDS, "value": _VALUES}),
    st.fixed_dictionaries({}, optional={"segmentationFieldId": _IDS, "value": _VALUES}),
)
_CONTACTS = st.fixed_dictionaries(
    {"emailAddress": _EMAILS},
    optional={
        "subscriptionState": st.one_of(
            st.sampled_from(["Subscribed", "Unsubscribed", " Subscribed", "", "Other", None, 1]),
            JSON,
        ),
        "segmentationFieldValues": st.one_of(
            st.lists(_ITEMS, max_size=3), st.lists(st.one_of(_ITEMS, JSON), max_size=3), JSON
        ),
        "subscribeDate": st.one_of(
            st.sampled_from(["2026-11-05T10:11:12", " 2026-11-05T10:11:12 ", "yesterday", ""]),
            JSON,
        ),
        "unsubscribeMethod": st.one_of(_TEXTS, JSON),
    },
)


def _with_field(value: object, **more: object) -> dict[str, object]:
    item = {"segmentationFieldId": 7, "value": value}
    return {"emailAddress": "a@x.io", "segmentationFieldValues": [item], **more}


@settings(max_examples=1000)
@given(st.one_of(_CONTACTS, JSON), st.sampled_from([True, False, None]))
@example(_with_field("a\x00"), True)
@example(_with_field("\ud800"), True)
@example(_with_field(" v "), True)
@example(_with_field("v", subscriptionState="Unsubscribed"), True)
@example({"emailAddress": "a" * 250 + "@x.io"}, True)
@example({"emailAddress": "a@x.io", "subscriptionState": ""}, None)
@example({"emailAddress": "a@x.io", "subscriptionState": None}, False)
def test_the_usual_contact_s_shortcut_answers_as_every_check_does(
    raw: object, scanned: bool | None
) -> None:
    assert parse_contact(raw, scanned=scanned) == checked_contact(raw, scanned=scanned)
