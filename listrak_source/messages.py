"""Pure message building: a pending row becomes the identify Segment should receive."""

from __future__ import annotations

import functools
import json
import os
import threading
from datetime import UTC, datetime
from typing import Any

from .records import Pending

# Segment refuses a message over 32 KB; keep headroom for what the library adds
# (context.library, the timestamp format, sentAt is per batch).
MAX_MESSAGE_BYTES = 32 * 1024
_LIBRARY_OVERHEAD = 512


def identify_message(row: Pending, trait: str) -> dict[str, Any]:
    """The identify as it goes on the wire, for dry runs and size checks."""
    message: dict[str, Any] = {
        "type": "identify",
        "messageId": row.message_id,
        "anonymousId": row.email,
        "traits": {"email": row.email, trait: True if row.subscribed else None},
        "timestamp": _stamp(row.detected_at),
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


@functools.lru_cache(maxsize=64)
def _stamp(moment: datetime) -> str:
    """Segment's timestamp form; a page's changes share one detection time, so it is cached."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.isoformat(timespec="milliseconds")


class MessageIds:
    """Random (version 4) UUIDs as strings, from one os.urandom read per thousand ids.

    A first sync makes a million ids; uuid.uuid4() makes a system call and a UUID object
    for each, which measured as a tenth of the whole run. The ids are as random.
    """

    _BATCH = 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: list[str] = []

    def __call__(self) -> str:
        with self._lock:
            if not self._pool:
                self._pool = [_uuid4(chunk) for chunk in _chunks(os.urandom(16 * self._BATCH))]
            return self._pool.pop()


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + 16] for i in range(0, len(data), 16)]


def _uuid4(raw: bytes) -> str:
    """The canonical form of a UUID with the version 4 and RFC 4122 variant bits set."""
    h = raw.hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"
