"""Listrak's contact JSON becomes a Contact, or a Reject that says what was wrong.

Listrak documents that any field may be null; be liberal in what is accepted and never
let one malformed contact stop a scan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..records import Contact, Page, Reject

# Deliberately loose: Listrak is the authority on what an address is; this only
# catches values that cannot be an address at all (empty, no @, spaces, no domain dot).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254
_STATES = frozenset(("Subscribed", "Unsubscribed"))


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is {type(value).__name__}, expected a string")
    return value.strip() or None


def _date(raw: Mapping[str, Any], name: str) -> datetime | None:
    value = raw.get(name)
    if not value or not isinstance(value, str):
        # A date we cannot read only costs incremental polling precision, so keep the contact.
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _fields(raw: Mapping[str, Any]) -> dict[int, str]:
    values = raw.get("segmentationFieldValues")
    if not values:
        return {}
    if not isinstance(values, list):
        raise ValueError("segmentationFieldValues is not a list")
    out: dict[int, str] = {}
    for item in values:
        if not isinstance(item, dict):
            raise ValueError("a segmentationFieldValues entry is not an object")
        field_id, value = item.get("segmentationFieldId"), item.get("value")
        if isinstance(field_id, str) and field_id.strip().isdigit():
            field_id = int(field_id)
        if isinstance(field_id, bool) or not isinstance(field_id, int):
            raise ValueError(f"segmentationFieldId {field_id!r} is not an integer")
        if value is None:
            continue
        text = str(value).strip()
        if text:
            out[field_id] = text
    return out


def _email(raw: Mapping[str, Any]) -> str | Reject:
    email = _text(raw, "emailAddress")
    if email is None:
        return Reject(reason="missing emailAddress", raw=repr(dict(raw))[:200])
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        return Reject(reason="invalid emailAddress", email=email[:MAX_EMAIL_LENGTH])
    return email


def parse_contact(raw: object) -> Contact | Reject:
    """Turn one JSON contact into a Contact, or a Reject that says what was wrong."""
    if not isinstance(raw, dict):  # JSON objects decode to dicts
        return Reject(reason=f"contact is {type(raw).__name__}, not an object", raw=repr(raw)[:200])
    email: str | Reject | None = None
    try:
        email = _email(raw)
        if isinstance(email, Reject):
            return email
        state = raw.get("subscriptionState") or "Subscribed"
        if state not in _STATES:
            return Reject(reason=f"unknown subscriptionState {state!r}", email=email)
        return _contact(raw, email, subscribed=state == "Subscribed")
    except ValueError as exc:
        return Reject(reason=str(exc), email=email if isinstance(email, str) else None)


def _contact(raw: Mapping[str, Any], email: str, *, subscribed: bool) -> Contact:
    # A removal keeps the last known userId, so an unsubscribe needs no readable fields:
    # it is a fact from Listrak whatever else the contact carries.
    return Contact(
        email,
        subscribed,
        _fields(raw) if subscribed else {},
        _date(raw, "subscribeDate"),
        _date(raw, "resubscribeDate"),
        _date(raw, "unsubscribeDate"),
        _text(raw, "unsubscribeMethod"),
    )


def parse_page(data: list[Any], cursor: str | None) -> Page:
    """Every contact of a page's data, split into those that parsed and those that did not."""
    contacts: list[Contact] = []
    rejects: list[Reject] = []
    for raw in data:
        parsed = parse_contact(raw)
        if isinstance(parsed, Contact):
            contacts.append(parsed)
        else:
            rejects.append(parsed)
    return Page(contacts=contacts, rejects=rejects, next_cursor=cursor or None)
