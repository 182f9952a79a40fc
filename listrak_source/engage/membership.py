"""One Segment event read as an audience membership fact, or the reason it carries none.

The rule is Segment's own: a `track` or `identify` whose `context.personas.computation_class`
is `audience` or `journey_step` names its audience in `computation_key`, and the value under
that key (in `properties` for a track, in `traits` for an identify) is the membership, but only
when it is a JSON boolean. The event's name is never consulted. Every field is read
defensively: whatever JSON arrives, the answer is a Membership or an Ignored, never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

MEMBERSHIP_CLASSES = ("audience", "journey_step")
MAX_EMAIL_LENGTH = 254
# Identifiers are stored and indexed; no honest messageId or space id comes near this.
MAX_ID_LENGTH = 255
# The longest ISO-8601 instant (nanoseconds and an offset) is 35 characters.
_MAX_TIMESTAMP_LENGTH = 64
# NUL cannot be stored in PostgreSQL text and a lone surrogate cannot be encoded as UTF-8:
# either would make every retry of the batch fail, so such a value is refused here.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_NOT_IN_EMAIL = re.compile("[\\s\x00-\x1f\x7f\ud800-\udfff]")
_NO_FIELDS: dict[str, Any] = {}


class IgnoreReason(StrEnum):
    """Why an item was acknowledged without being used."""

    NOT_AN_OBJECT = "not_an_object"
    NOT_A_MEMBERSHIP_EVENT = "not_a_membership_event"
    NO_COMPUTATION_KEY = "no_computation_key"
    VALUE_NOT_BOOLEAN = "value_not_boolean"
    MISSING_EMAIL = "missing_email"
    INVALID_EMAIL = "invalid_email"
    MISSING_MESSAGE_ID = "missing_message_id"
    BAD_MESSAGE_ID = "bad_message_id"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"


@dataclass(frozen=True, slots=True)
class Membership:
    """One profile's email entered (member) or left an audience at `timestamp`."""

    audience_key: str
    space_id: str | None
    email: str
    email_key: str
    member: bool
    timestamp: datetime
    message_id: str


@dataclass(frozen=True, slots=True)
class Ignored:
    """An item that carries no usable membership, and why."""

    reason: IgnoreReason


Parsed = Membership | Ignored
_IGNORED = {reason: Ignored(reason) for reason in IgnoreReason}


def parse_item(item: object) -> Parsed:
    """Read one decoded JSON item; any shape of input gives an answer, never an exception."""
    if not isinstance(item, dict):
        return _IGNORED[IgnoreReason.NOT_AN_OBJECT]
    kind = item.get("type")
    context = _fields(item.get("context"))
    personas = _fields(context.get("personas"))
    if kind not in ("track", "identify") or not _is_membership_class(personas):
        return _IGNORED[IgnoreReason.NOT_A_MEMBERSHIP_EVENT]
    key = _text(personas.get("computation_key"))
    if key is None:
        return _IGNORED[IgnoreReason.NO_COMPUTATION_KEY]
    if kind == "track":
        values, identity = _fields(item.get("properties")), _fields(context.get("traits"))
    else:
        values = identity = _fields(item.get("traits"))
    member = values.get(key)
    if not isinstance(member, bool):
        return _IGNORED[IgnoreReason.VALUE_NOT_BOOLEAN]
    return _finish(item, key, _text(personas.get("space_id"), MAX_ID_LENGTH), member, identity)


def _finish(
    item: dict[str, Any], key: str, space_id: str | None, member: bool, identity: dict[str, Any]
) -> Parsed:
    email = parse_email(identity.get("email"))
    if isinstance(email, IgnoreReason):
        return _IGNORED[email]
    message_id = _message_id(item.get("messageId"))
    if isinstance(message_id, IgnoreReason):
        return _IGNORED[message_id]
    # No fallback to receivedAt: that is when Segment took the event in, a different clock
    # from the computation's, and ordering by it could let a stale value win silently. Segment
    # always sets timestamp; one without a usable timestamp is counted, visibly, instead.
    timestamp = parse_timestamp(item.get("timestamp"))
    if timestamp is None:
        return _IGNORED[IgnoreReason.BAD_TIMESTAMP]
    return Membership(key, space_id, email, email.lower(), member, timestamp, message_id)


def _fields(value: object) -> dict[str, Any]:
    """The value when it is a JSON object, else an empty one, so lookups never fail."""
    return value if isinstance(value, dict) else _NO_FIELDS


def _is_membership_class(personas: dict[str, Any]) -> bool:
    computation_class = personas.get("computation_class")
    return isinstance(computation_class, str) and computation_class in MEMBERSHIP_CLASSES


def _text(value: object, limit: int | None = None) -> str | None:
    """A non-empty string that can be stored as it is, else None."""
    if not isinstance(value, str) or not value or _UNSTORABLE.search(value):
        return None
    return value if limit is None or len(value) <= limit else None


def parse_email(value: object) -> str | IgnoreReason:
    """The trimmed email, or why it cannot address a Listrak contact."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return IgnoreReason.MISSING_EMAIL
    if not isinstance(value, str):
        return IgnoreReason.INVALID_EMAIL
    email = value.strip()
    local, at, domain = email.rpartition("@")
    # The key is the lower-cased form, which can be longer: "İ" becomes two characters.
    if not (at and local and domain) or len(email.lower()) > MAX_EMAIL_LENGTH:
        return IgnoreReason.INVALID_EMAIL
    return IgnoreReason.INVALID_EMAIL if _NOT_IN_EMAIL.search(email) else email


def _message_id(value: object) -> str | IgnoreReason:
    if value is None or value == "":
        return IgnoreReason.MISSING_MESSAGE_ID
    text = _text(value, MAX_ID_LENGTH)
    return IgnoreReason.BAD_MESSAGE_ID if text is None else text


def parse_timestamp(value: object) -> datetime | None:
    """An ISO-8601 instant with Z or an offset, as aware UTC; anything else is None."""
    if not isinstance(value, str) or len(value) > _MAX_TIMESTAMP_LENGTH:
        return None
    try:
        moment = datetime.fromisoformat(value)
        # A time without an offset names no instant, so it cannot order anything.
        return moment.astimezone(UTC) if moment.tzinfo is not None else None
    except (ValueError, OverflowError):
        return None
