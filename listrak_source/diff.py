"""Pure change detection: one page of contacts against the stored rows for them."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .models import Contact, Reject


class Kind(enum.StrEnum):
    """Why a row's desired state changed; also the metric label."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    USER_ID = "user_id"


class Stored(NamedTuple):
    """What the state table holds for one (list, contact) before this page.

    NamedTuples, like Contact: a first sync builds a million Changes, a re-sync a
    million Stored rows, and a frozen dataclass costs several times as much to build.
    """

    desired_subscribed: bool
    desired_user_id: str | None
    last_seen_run: int | None = None


class Change(NamedTuple):
    """A new desired state for one contact; it gets its own message id."""

    key: str
    email: str
    subscribed: bool
    user_id: str | None
    kind: Kind
    message_id: str
    is_new: bool = False


@dataclass(slots=True)
class PageDiff:
    """What one page changes: rows to write, and contacts refused."""

    changes: list[Change] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


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
        change = _change_for(contact, row, user_id_field, new_id)
        if change is not None:
            out.changes.append(change)
    return out


def _change_for(
    contact: Contact, row: Stored | None, user_id_field: int | None, new_id: Callable[[], str]
) -> Change | None:
    if row is None:
        # An unsubscribed contact we never sent as subscribed has nothing in Segment to remove.
        if not contact.subscribed:
            return None
        user_id = _user_id(contact, user_id_field)
        return _make(contact, True, user_id, Kind.SUBSCRIBED, new_id, is_new=True)
    return _change_existing(contact, row, user_id_field, new_id)


def _change_existing(
    contact: Contact, row: Stored, user_id_field: int | None, new_id: Callable[[], str]
) -> Change | None:
    if not contact.subscribed:
        if not row.desired_subscribed:
            return None
        # Keep the last known userId so the removal lands on the same Segment profile.
        return _make(contact, False, row.desired_user_id, Kind.UNSUBSCRIBED, new_id)
    user_id = _user_id(contact, user_id_field)
    if not row.desired_subscribed:
        return _make(contact, True, user_id, Kind.SUBSCRIBED, new_id)
    if user_id_field is not None and user_id != row.desired_user_id:
        return _make(contact, True, user_id, Kind.USER_ID, new_id)
    return None


def _user_id(contact: Contact, user_id_field: int | None) -> str | None:
    return contact.fields.get(user_id_field) if user_id_field is not None else None


def _make(
    contact: Contact,
    subscribed: bool,
    user_id: str | None,
    kind: Kind,
    new_id: Callable[[], str],
    *,
    is_new: bool = False,
) -> Change:
    return Change(
        key=contact.key,
        email=contact.email,
        subscribed=subscribed,
        user_id=user_id,
        kind=kind,
        message_id=new_id(),
        is_new=is_new,
    )


def removal_ratio(removals: int, subscribed: int) -> float:
    """Share of the list a sweep would remove; a sweep of an empty list removes nothing."""
    return removals / subscribed if subscribed else 0.0
