"""Listrak's contact JSON becomes a Contact, or a Reject that says what was wrong.

Listrak documents that any field may be null; be liberal in what is accepted and never
let one malformed contact stop a scan.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..records import Contact, Page, Reject

# Deliberately loose: Listrak is the authority on what an address is; this only
# catches values that cannot be an address at all (empty, no @, spaces, no domain dot).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+$")
MAX_EMAIL_LENGTH = 254
_STATES = {"Subscribed": True, "Unsubscribed": False}
# Neither store holds these as text alike: PostgreSQL refuses NUL, and UTF-8 cannot
# encode a lone surrogate (JSON can carry one as an escape).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_DIGITS = re.compile(r"^\s*[0-9]+\s*$")
# The usual address, ASCII (so storable unless it holds NUL) and already stripped: what
# _EMAIL accepts, matched whole, since a match up to a trailing newline would not do here.
_PLAIN_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")
# Part of every contact digest (listrak/pieces.py): a stored digest stands for what these
# functions made of the contact's bytes. Change it with anything that could make them
# answer otherwise for the same bytes, so every contact is decoded and checked again.
PARSE_VERSION = 1


def storable(text: str) -> bool:
    """Whether both stores can hold this text as it is."""
    return _UNSTORABLE.search(text) is None


def _text(raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{name} is {type(value).__name__}, expected a string")
    return value.strip() or None


def _optional_text(raw: Mapping[str, Any], name: str) -> str | None:
    """A value the worker can do without: anything but usable text counts as absent."""
    value = raw.get(name)
    if not isinstance(value, str) or not storable(value):
        return None
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


def _field_id(value: object) -> int:
    if isinstance(value, str) and _DIGITS.match(value):
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"segmentationFieldId {repr(value)[:40]} is not an integer")
    return value


def _field_value(value: object) -> str | None:
    """Values are strings; a number is taken as its digits, anything else is refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"a profile field value is {type(value).__name__}, not text")
    text = str(value).strip()
    if not storable(text):
        raise ValueError("a profile field value holds NUL or an unpaired surrogate")
    return text or None


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
        field_id = _field_id(item.get("segmentationFieldId"))
        text = _field_value(item.get("value"))
        if text is not None:
            out[field_id] = text
    return out


def _email(raw: Mapping[str, Any]) -> str | Reject:
    email = _text(raw, "emailAddress")
    if email is None:
        return Reject(reason="missing emailAddress", raw=repr(dict(raw))[:200])
    # A reject keeps its address only when the store can hold it; it is then also seen.
    if not storable(email):
        return Reject(reason="emailAddress holds NUL or an unpaired surrogate")
    if len(email.lower()) > MAX_EMAIL_LENGTH:
        return Reject(reason=f"emailAddress is over {MAX_EMAIL_LENGTH} characters lower-cased")
    if not _EMAIL.match(email):
        return Reject(reason="invalid emailAddress", email=email)
    return email


def _subscribed(raw: Mapping[str, Any], scanned: bool | None) -> bool:
    state = _text(raw, "subscriptionState")
    if state is None:
        if scanned is None:
            raise ValueError("subscriptionState is missing")
        return scanned
    if state not in _STATES:
        raise ValueError(f"unknown subscriptionState {state[:40]!r}")
    return _STATES[state]


def parse_contact(
    raw: object, digest: int | None = None, *, scanned: bool | None = None
) -> Contact | Reject:
    """Turn one JSON contact into a Contact, or a Reject that says what was wrong.

    A contact whose subscriptionState is null or absent is in the state its scan asked
    for (`scanned`): Listrak chose it by that state. Read alone (`scanned` None), it says
    nothing of its state, and is refused: a subscriber is then kept, never removed.

    A re-sync parses every contact of the list, so the usual contact (a plain address,
    a known state, text or absent field values) takes a shortcut; anything else is
    checked step by step, and both give the same answer (a property test compares them).
    """
    if type(raw) is dict:
        plain = _plain_contact(raw, digest, scanned)
        if plain is not None:
            return plain
    return checked_contact(raw, digest, scanned=scanned)


def checked_contact(
    raw: object, digest: int | None = None, *, scanned: bool | None = None
) -> Contact | Reject:
    """parse_contact with every check spelled out, for any JSON whatever."""
    if not isinstance(raw, dict):  # JSON objects decode to dicts
        return Reject(reason=f"contact is {type(raw).__name__}, not an object", raw=repr(raw)[:200])
    email: str | Reject | None = None
    try:
        email = _email(raw)
        if isinstance(email, Reject):
            return email
        return _contact(raw, email, subscribed=_subscribed(raw, scanned), digest=digest)
    except ValueError as exc:
        return Reject(reason=str(exc), email=email if isinstance(email, str) else None)


def _plain_contact(raw: dict[str, Any], digest: int | None, scanned: bool | None) -> Contact | None:
    """The usual contact, or None for checked_contact to judge."""
    email = raw.get("emailAddress")
    state = raw.get("subscriptionState")
    subscribed = _STATES.get(state) if type(state) is str else scanned
    if (
        type(email) is not str
        or not email.isascii()  # lower-casing then keeps the length
        or len(email) > MAX_EMAIL_LENGTH
        or not _PLAIN_EMAIL.fullmatch(email)
        or (state is not None and type(state) is not str)
        or subscribed is None
    ):
        return None
    fields = _plain_fields(raw.get("segmentationFieldValues")) if subscribed else {}
    if fields is None:
        return None
    return _contact(raw, email, subscribed=subscribed, fields=fields, digest=digest)


def _plain_fields(values: object) -> dict[int, str] | None:
    """Profile field values that are all text or null, by integer ids; else None."""
    if not values:
        return {}
    if type(values) is not list:
        return None
    out: dict[int, str] = {}
    for item in values:
        if type(item) is not dict:
            return None
        field_id, value = item.get("segmentationFieldId"), item.get("value")
        if type(field_id) is not int or (value is not None and type(value) is not str):
            return None
        text = value.strip() if value is not None else None
        if text and not (text.isascii() and "\x00" not in text) and not storable(text):
            return None
        if text:
            out[field_id] = text
    return out


def _contact(
    raw: Mapping[str, Any],
    email: str,
    *,
    subscribed: bool,
    fields: Mapping[int, str] | None = None,
    digest: int | None = None,
) -> Contact:
    # A removal keeps the last known userId, so an unsubscribe needs no readable fields:
    # it is a fact from Listrak whatever else the contact carries.
    if fields is None:
        fields = _fields(raw) if subscribed else {}
    return Contact(
        email,
        subscribed,
        fields,
        _date(raw, "subscribeDate"),
        _date(raw, "resubscribeDate"),
        _date(raw, "unsubscribeDate"),
        _optional_text(raw, "unsubscribeMethod"),
        digest,
    )


def parse_page(
    data: list[Any],
    cursor: str | None,
    digests: Sequence[int] | None = None,
    *,
    scanned: bool = True,
) -> Page:
    """Every contact of a page's data, split into those that parsed and those that did not;
    each with its digest (see Contact.digest), when given; `scanned`, the subscription
    state the page's scan asked for."""
    contacts: list[Contact] = []
    rejects: list[Reject] = []
    given: Sequence[int | None] = digests if digests is not None else [None] * len(data)
    for raw, digest in zip(data, given, strict=True):
        parsed = parse_contact(raw, digest, scanned=scanned)
        if isinstance(parsed, Contact):
            contacts.append(parsed)
        else:
            rejects.append(parsed)
    return Page(contacts=contacts, rejects=rejects, next_cursor=cursor or None)
