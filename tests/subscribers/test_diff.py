"""The pure diff: every row of DESIGN.md's table, and properties over random pages."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from listrak_source.records import Contact, Kind, Stored
from listrak_source.subscribers.diff import diff_page, removal_ratio

FIELD = 678


def ids() -> itertools.count[int]:
    return itertools.count(1)


def diff(
    contacts: list[Contact],
    stored: dict[str, Stored],
    *,
    field: int | None = FIELD,
    run_id: int = 5,
):
    counter = ids()
    return diff_page(
        contacts, stored, user_id_field=field, run_id=run_id, new_id=lambda: f"m{next(counter)}"
    )


def test_new_subscriber_is_a_new_row_with_user_id() -> None:
    page = diff([Contact("Ann@Example.com", True, {FIELD: "crm-1"})], {})
    [change] = page.changes
    assert (change.key, change.email, change.subscribed, change.user_id) == (
        "ann@example.com",
        "Ann@Example.com",
        True,
        "crm-1",
    )
    assert change.kind is Kind.SUBSCRIBED and change.is_new and change.message_id == "m1"


def test_unchanged_contact_changes_nothing() -> None:
    page = diff([Contact("a@x.io", True, {FIELD: "u"})], {"a@x.io": Stored(True, "u")})
    assert page.changes == []


def test_resubscribe_and_user_id_change() -> None:
    stored = {"a@x.io": Stored(False, "u"), "b@x.io": Stored(True, "old")}
    page = diff(
        [Contact("a@x.io", True, {FIELD: "u"}), Contact("b@x.io", True, {FIELD: "new"})], stored
    )
    assert [(c.key, c.kind, c.user_id) for c in page.changes] == [
        ("a@x.io", Kind.SUBSCRIBED, "u"),
        ("b@x.io", Kind.USER_ID, "new"),
    ]


def test_a_change_back_to_what_segment_accepted_carries_no_message() -> None:
    # Unsubscribed (its null still pending), then back: Segment already holds this `true`.
    back = {"a@x.io": Stored(False, "u", sent_subscribed=True, sent_user_id="u")}
    [change] = diff([Contact("a@x.io", True, {FIELD: "u"})], back).changes
    assert change.kind is Kind.SUBSCRIBED and change.message_id is None
    # A different userId than the accepted one is news, and so is every removal.
    other = diff([Contact("a@x.io", True, {FIELD: "v"})], back).changes
    assert other[0].message_id == "m1"
    gone = {"a@x.io": Stored(True, "u", sent_subscribed=True, sent_user_id="u")}
    [removal] = diff([Contact("a@x.io", False)], gone).changes
    assert removal.kind is Kind.UNSUBSCRIBED and removal.message_id == "m1"


def test_user_id_ignored_without_field() -> None:
    page = diff(
        [Contact("b@x.io", True, {FIELD: "new"})], {"b@x.io": Stored(True, None)}, field=None
    )
    assert page.changes == []


def test_unsubscribed_contact_keeps_last_user_id() -> None:
    page = diff([Contact("a@x.io", False)], {"a@x.io": Stored(True, "crm-9")})
    [change] = page.changes
    assert change.kind is Kind.UNSUBSCRIBED and change.user_id == "crm-9"


def test_unsubscribed_contact_never_stored_sends_nothing() -> None:
    assert diff([Contact("a@x.io", False)], {}).changes == []


def test_duplicate_in_page_and_in_scan_is_rejected() -> None:
    page = diff(
        [Contact("a@x.io", True), Contact("A@x.io", True), Contact("b@x.io", True)],
        {"b@x.io": Stored(True, None, last_seen_run=5)},
    )
    assert [r.reason for r in page.rejects] == ["duplicate email in one scan"] * 2
    assert [c.key for c in page.changes] == ["a@x.io"]


def test_removal_ratio() -> None:
    assert removal_ratio(0, 0) == 0.0
    assert removal_ratio(5, 10) == 0.5


emails = st.sampled_from([f"user{i}@example.com" for i in range(12)])
contacts = st.builds(
    Contact,
    emails,
    st.booleans(),
    st.dictionaries(st.just(FIELD), st.sampled_from(["u1", "u2"]), max_size=1),
)
stored_rows = st.dictionaries(
    emails, st.builds(Stored, st.booleans(), st.sampled_from([None, "u1", "u2"]))
)


@given(st.lists(contacts, max_size=20), stored_rows)
def test_applying_the_diff_reaches_the_page(
    page_contacts: list[Contact], stored: dict[str, Stored]
) -> None:
    """After applying the changes, every first-seen contact's state equals what Listrak said."""
    page = diff(page_contacts, stored)
    state = {k: (v.desired_subscribed, v.desired_user_id) for k, v in stored.items()}
    for change in page.changes:
        state[change.key] = (change.subscribed, change.user_id)
    first: dict[str, Contact] = {}
    for contact in page_contacts:
        first.setdefault(contact.key, contact)
    for key, contact in first.items():
        if contact.subscribed:
            assert state[key] == (True, contact.fields.get(FIELD))
        elif key in state:
            assert state[key][0] is False
    # A change back to what Segment accepted carries no message (it is dropped, not sent).
    ids = [c.message_id for c in page.changes if c.message_id is not None]
    assert len(set(ids)) == len(ids)
    assert len({c.key for c in page.changes}) == len(page.changes)
