"""Pure message building: a pending row becomes the identify Segment should receive."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .records import Pending

# Segment refuses a message over 32 KB; keep headroom for what the library adds
# (context.library, the timestamp format, sentAt is per batch).
MAX_MESSAGE_BYTES = 32 * 1024
_LIBRARY_OVERHEAD = 512


def traits(row: Pending, trait: str, retired: Sequence[str] = ()) -> dict[str, Any]:
    """The identify's traits: the list's trait, and null for old names a rename retires."""
    out: dict[str, Any] = {"email": row.email, trait: True if row.subscribed else None}
    out.update(dict.fromkeys(retired))
    return out


def identify_kwargs(row: Pending, trait: str, retired: Sequence[str] = ()) -> dict[str, Any]:
    """Arguments for segment.analytics.Client.identify; a null trait removes it in Segment."""
    return {
        "user_id": row.user_id,
        "anonymous_id": row.email,
        "traits": traits(row, trait, retired),
        "timestamp": _aware(row.detected_at),
        "message_id": row.message_id,
    }


def identify_message(row: Pending, trait: str, retired: Sequence[str] = ()) -> dict[str, Any]:
    """The identify as it goes on the wire, for dry runs and size checks."""
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": row.message_id,
        "anonymousId": row.email,
        "traits": traits(row, trait, retired),
        "timestamp": _aware(row.detected_at).isoformat(timespec="milliseconds"),
    }
    if row.user_id is not None:
        message["userId"] = row.user_id
    return message


def oversize_reason(email: str, user_id: str | None, trait: str) -> str | None:
    """Why a contact's message would exceed Segment's 32 KB limit, or None if it fits."""
    probe = Pending(0, email.lower(), email, True, user_id, "0" * 36, datetime.now(UTC))
    size = len(json.dumps(identify_message(probe, trait)).encode()) + _LIBRARY_OVERHEAD
    if size <= MAX_MESSAGE_BYTES:
        return None
    return f"identify would be {size} bytes, over Segment's {MAX_MESSAGE_BYTES}-byte limit"


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
