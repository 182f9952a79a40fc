"""Plain records that cross module boundaries; no I/O, no third-party imports."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Deliberately loose: Listrak is the authority on what an address is; this only
# catches values that cannot be an address at all (empty, no @, spaces, no domain dot).
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_EMAIL_LENGTH = 254


@dataclass(frozen=True, slots=True)
class Contact:
    """One contact as a list scan returned it, already validated."""

    email: str
    subscribed: bool
    fields: Mapping[int, str] = field(default_factory=dict)
    subscribe_date: datetime | None = None
    resubscribe_date: datetime | None = None
    unsubscribe_date: datetime | None = None
    unsubscribe_method: str | None = None

    @property
    def key(self) -> str:
        """State is keyed by the lower-cased address so case edits are not new people."""
        return self.email.lower()


@dataclass(frozen=True, slots=True)
class Reject:
    """A contact the scan could not use, and why: stored and shown, never fatal."""

    reason: str
    email: str | None = None
    raw: str = ""


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is {type(value).__name__}, expected a string")
    return value.strip() or None


def _date(raw: Mapping[str, Any], name: str) -> datetime | None:
    value = _text(raw, name)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        # A date we cannot read only costs incremental polling precision, so keep the contact.
        return None


def _fields(raw: Mapping[str, Any]) -> dict[int, str]:
    values = raw.get("segmentationFieldValues") or []
    if not isinstance(values, list):
        raise ValueError("segmentationFieldValues is not a list")
    out: dict[int, str] = {}
    for item in values:
        if not isinstance(item, Mapping):
            raise ValueError("a segmentationFieldValues entry is not an object")
        field_id, value = item.get("segmentationFieldId"), item.get("value")
        if isinstance(field_id, bool) or not isinstance(field_id, int):
            raise ValueError(f"segmentationFieldId {field_id!r} is not an integer")
        if value is None:
            continue
        text = str(value).strip()
        if text:
            out[field_id] = text
    return out


def parse_contact(raw: object) -> Contact | Reject:
    """Turn one JSON contact into a Contact, or a Reject that says what was wrong."""
    if not isinstance(raw, Mapping):
        return Reject(reason=f"contact is {type(raw).__name__}, not an object", raw=repr(raw)[:200])
    email: str | None = None
    try:
        email = _text(raw, "emailAddress")
        if email is None:
            return Reject(reason="missing emailAddress", raw=repr(dict(raw))[:200])
        if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
            return Reject(reason="invalid emailAddress", email=email[:MAX_EMAIL_LENGTH])
        state = _text(raw, "subscriptionState") or "Subscribed"
        if state not in ("Subscribed", "Unsubscribed"):
            return Reject(reason=f"unknown subscriptionState {state!r}", email=email)
        return Contact(
            email=email,
            subscribed=state == "Subscribed",
            fields=_fields(raw),
            subscribe_date=_date(raw, "subscribeDate"),
            resubscribe_date=_date(raw, "resubscribeDate"),
            unsubscribe_date=_date(raw, "unsubscribeDate"),
            unsubscribe_method=_text(raw, "unsubscribeMethod"),
        )
    except ValueError as exc:
        return Reject(reason=str(exc), email=email)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a scan: what parsed, what did not, and the cursor that follows."""

    contacts: list[Contact]
    rejects: list[Reject]
    next_cursor: str | None
