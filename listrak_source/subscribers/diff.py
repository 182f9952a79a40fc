"""Pure change detection: one page of contacts against the stored rows for them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..records import Change, Contact, Kind, PageDiff, Reject, Stored, user_id_of


def diff_page(
    contacts: Iterable[Contact],
    stored: Mapping[str, Stored],
    *,
    user_id_field: int | None,
    run_id: int,
    new_id: Callable[[], str],
) -> PageDiff:
    """Compare a page with the stored rows; a contact seen twice in one scan is refused."""
    out = PageDiff()
    page_keys: set[str] = set()
    for contact in contacts:
        key = contact.key
        row = stored.get(key)
        if key in page_keys or (row is not None and row.last_seen_run == run_id):
            out.rejects.append(Reject(reason="duplicate email in one scan", email=contact.email))
            continue
        page_keys.add(key)
        if row is None:
            change = _new_row(contact, key, user_id_field, new_id)
        else:
            change = _change_existing(contact, row, user_id_field, new_id)
        if change is not None:
            out.changes.append(change)
    return out


def _new_row(
    contact: Contact, key: str, user_id_field: int | None, new_id: Callable[[], str]
) -> Change | None:
    """A contact never stored: a subscription (every contact of a first sync, a million at
    a time, so built positionally, with its key as the caller has it)."""
    # An unsubscribed contact we never sent as subscribed has nothing in Segment to remove.
    if not contact.subscribed:
        return None
    user_id = user_id_of(contact, user_id_field)
    email, digest = contact.email, contact.digest
    return Change(key, email, True, user_id, Kind.SUBSCRIBED, new_id(), True, digest)


def _change_existing(
    contact: Contact, row: Stored, user_id_field: int | None, new_id: Callable[[], str]
) -> Change | None:
    if not contact.subscribed:
        if not row.desired_subscribed:
            return None
        return _make(contact, row, False, removal_user_id(row), Kind.UNSUBSCRIBED, new_id=new_id)
    user_id = user_id_of(contact, user_id_field)
    # Back to exactly what Segment last accepted, with nothing posted since that Segment
    # may have kept: the pending message is dropped, not sent. Only for a subscription: a
    # removal always goes out, since an answer lost after Segment kept a pending `true`
    # would otherwise leave the trait set.
    unchanged = (row.sent_subscribed, row.sent_user_id) == (True, user_id) and not row.in_doubt
    ids = _no_message if unchanged else new_id
    if not row.desired_subscribed:
        return _make(contact, row, True, user_id, Kind.SUBSCRIBED, new_id=ids)
    if user_id_field is not None and user_id != row.desired_user_id:
        return _make(contact, row, True, user_id, Kind.USER_ID, new_id=ids)
    return None


def removal_user_id(row: Stored) -> str | None:
    """The userId a removal carries: the one Segment accepted with the `true`, so the null
    lands on the profile that holds the trait; a pending one only if none was accepted."""
    return row.sent_user_id if row.sent_subscribed else row.desired_user_id


def _no_message() -> None:
    return None


def _make(
    contact: Contact,
    row: Stored,
    subscribed: bool,
    user_id: str | None,
    kind: Kind,
    *,
    new_id: Callable[[], str | None],
) -> Change:
    """A new desired state for a stored row."""
    # Segment's profile is keyed by the spelling it got: a case change in Listrak keeps it.
    email = row.email or contact.email
    return Change(
        key=contact.key,
        email=email,
        subscribed=subscribed,
        user_id=user_id,
        kind=kind,
        message_id=new_id(),
        digest=contact.digest if subscribed else None,
    )


def removal_ratio(removals: int, subscribed: int) -> float:
    """Share of the list a sweep would remove; a sweep of an empty list removes nothing."""
    return removals / subscribed if subscribed else 0.0
